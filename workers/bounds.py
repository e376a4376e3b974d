"""What any spec may ask of this node, checked before a signed message is acted on.

A signature says the portal sent the spec; these bounds hold even if the portal is wrong or
compromised: no more processes than the node has slots (GPUs on a GPU placement), a dataset
(and a custom model's code) only from under the storage root, and checkpoints only under the
checkpoint root. Paths are
resolved first, so `..` and symlinks cannot step outside.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workers import config, storage


@dataclass(frozen=True)
class NodeLimits:
    cpu_slots: int
    gpu_count: int
    storage_root: Path
    checkpoint_root: Path
    # The object-storage prefix (`TRAINYARD_STORAGE_URL`, e.g. `s3://bucket/trainyard`) whose
    # objects this node may fetch; None: local files only.
    storage_url: str | None = None


def _under(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root.resolve())


def _uri_problem(uri: object, what: str, limits: NodeLimits) -> str | None:
    """Why `uri` (a dataset or model code) is out of this node's bounds, or None."""
    if not isinstance(uri, str):
        return f"the {what} URI is not a string"
    if not storage.is_local(uri):
        prefix = (limits.storage_url or "").rstrip("/") + "/"
        if limits.storage_url is None or not uri.startswith(prefix):
            return f"{what} {uri!r} is not under this node's storage URL {limits.storage_url}"
        if ".." in uri[len(prefix) :].split("/"):
            return f"{what} {uri!r} steps out of the storage URL with '..'"
        return None
    try:
        path = storage.local_path_for(uri)
    except storage.StorageError as exc:
        return str(exc)
    if not _under(path, limits.storage_root):
        return f"{what} {uri!r} is outside the storage root {limits.storage_root}"
    return None


def spec_problem(spec_json: Any, limits: NodeLimits) -> str | None:
    """Why this node must refuse the spec, or None when it stays within the node's bounds."""
    try:
        placement = spec_json["placement"]
        nproc = placement["nproc_per_node"]
        device = placement["device"]
        uri = spec_json["dataset"]["uri"]
        checkpoint_dir = spec_json["checkpoint_dir"]
    except (KeyError, TypeError):
        return "the spec is malformed"
    if not isinstance(nproc, int) or isinstance(nproc, bool) or nproc < 1:
        return f"nproc_per_node {nproc!r} is not a positive integer"
    available = limits.gpu_count if device == "cuda" else limits.cpu_slots
    if nproc > available:
        kind = "GPUs" if device == "cuda" else "CPU slots"
        return f"it asks for {nproc} processes; this node has {available} {kind}"
    problem = _uri_problem(uri, "dataset", limits)
    if problem:
        return problem
    model = spec_json.get("model")
    if isinstance(model, dict) and model.get("architecture") == "custom":
        problem = _uri_problem(model.get("code_uri"), "model code", limits)
        if problem:
            return problem
    if not isinstance(checkpoint_dir, str) or not Path(checkpoint_dir).is_absolute():
        return f"checkpoint_dir {checkpoint_dir!r} is not an absolute path"
    if not _under(Path(checkpoint_dir), limits.checkpoint_root):
        return f"checkpoint_dir {checkpoint_dir!r} is outside {limits.checkpoint_root}"
    return None


def node_limits(*, gpu_count: int) -> NodeLimits:
    """This node's limits from its environment (ConfigError when the storage root is unset)."""
    root = config.raw_setting("TRAINYARD_STORAGE_ROOT")
    if root is None:
        raise config.ConfigError(
            "TRAINYARD_STORAGE_ROOT must be set on a node: datasets are read only from under it"
        )
    storage_root = Path(root).expanduser().resolve()
    checkpoints = config.raw_setting("TRAINYARD_CHECKPOINT_ROOT")
    return NodeLimits(
        cpu_slots=config.node_cpu_slots(),
        gpu_count=gpu_count,
        storage_root=storage_root,
        checkpoint_root=(
            Path(checkpoints).expanduser().resolve()
            if checkpoints
            else storage_root / "checkpoints"
        ),
        storage_url=config.raw_setting("TRAINYARD_STORAGE_URL") or None,
    )
