"""The portal's REST API as the CLI uses it: every call, and what it reads, in one table.

`ENDPOINTS` is the CLI's side of the contract with the portal's OpenAPI schema
(`/api/v1/schema/`): `tests/cli/test_api_contract.py` checks that each path and method exists,
takes the query parameters listed, accepts the body fields listed and answers with the fields
listed. Commands call the API only through `Client.call(ENDPOINT, ...)`, so a call that is not
in the table cannot be made.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

import httpx


class ExitCode(enum.IntEnum):
    OK = 0
    JOB_FAILED = 1  # follow / submit --follow: the job failed or was cancelled
    USAGE = 2  # bad arguments, a bad spec file, not logged in (click uses 2 too)
    API = 3  # the portal refused the request: 400, 401, 403, 404, ...
    UNREACHABLE = 4  # no answer from the portal at all


# `datasets upload --wait`: the upload was stored but validation found it invalid.
DATASET_INVALID = ExitCode.JOB_FAILED


class CliError(Exception):
    """An error that ends the command with `code` and a one-line `message`."""

    def __init__(self, message: str, code: ExitCode, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message, self.code, self.status = message, code, status


@dataclass(frozen=True)
class Endpoint:
    """One API call. `fields` are the dotted paths the CLI reads from the success answer
    (arrays are stepped into: `results.state` is the state of each listed job); `body` the
    dotted paths it may send in a JSON body."""

    method: str
    path: str
    status: int = 200
    params: tuple[str, ...] = ()
    body: tuple[str, ...] = ()
    fields: tuple[str, ...] = field(default=())
    # How the body is sent: JSON, or a multipart form (an upload).
    media: str = "application/json"


JOB_FIELDS = (
    "id",
    "name",
    "owner",
    "state",
    "state_reason",
    "dataset.name",
    "model.name",
    "resources.nodes",
    "resources.procs_per_node",
    "resources.gpus_per_node",
    "priority",
    "restarts",
    "created_at",
    "started_at",
    "finished_at",
    "attempts.id",
    "attempts.number",
    "attempts.state",
    "attempts.nodes",
    "spec.training.epochs",
    "urls.websocket",
    "urls.web",
)
PAGE = ("count", "next", "results")
LIST_PARAMS = ("limit", "offset")

JOBS_LIST = Endpoint(
    "GET",
    "/api/v1/jobs/",
    params=(*LIST_PARAMS, "state", "owner", "dataset", "model", "name", "ordering"),
    fields=(*PAGE, *(f"results.{name}" for name in JOB_FIELDS)),
)
JOB_SUBMIT = Endpoint(
    "POST",
    "/api/v1/jobs/",
    status=201,
    body=(
        "name",
        "dataset",
        "model",
        # An object whose fields are the chosen architecture's (the portal checks them).
        "hyperparameters",
        "training.epochs",
        "training.batch_size",
        "training.learning_rate",
        "training.optimizer",
        "training.loss",
        "training.seed",
        "resources.nodes",
        "resources.procs_per_node",
        "resources.gpus_per_node",
        "resources.pool",
        "priority",
        "max_restarts",
    ),
    fields=JOB_FIELDS,
)
JOB_DETAIL = Endpoint("GET", "/api/v1/jobs/{job_id}/", fields=JOB_FIELDS)
# `trainyard why`: the scheduler's account of a queued job.
JOB_WHY = Endpoint(
    "GET",
    "/api/v1/jobs/{job_id}/",
    fields=(
        "id",
        "state",
        "state_reason",
        "estimated_start",
        "why_pending.waiting_for",
        "why_pending.queue",
        "why_pending.position",
        "why_pending.queue_length",
        "why_pending.ahead.id",
        "why_pending.ahead.owner",
        "why_pending.ahead.size",
        "why_pending.constraints.label",
        "why_pending.constraints.nodes",
        "why_pending.nodes_fit",
        "why_pending.nodes_total",
        "why_pending.quota.message",
        "why_pending.quota.headroom",
        "why_pending.reservation.start",
        "why_pending.reservation.nodes",
    ),
)
JOB_CANCEL = Endpoint("POST", "/api/v1/jobs/{job_id}/cancel/", status=202, fields=JOB_FIELDS)
JOB_LOGS = Endpoint(
    "GET",
    "/api/v1/jobs/{job_id}/logs/",
    params=("after", "limit"),
    fields=(
        "lines.node_rank",
        "lines.seq",
        "lines.rank",
        "lines.stream",
        "lines.line",
        "next.after",
        "has_more",
        "truncated",
    ),
)
DATASET_FIELDS = (
    "id",
    "slug",
    "name",
    "version",
    "state",
    "state_reason",
    "format",
    "task",
    "target",
    "classes",
    "num_rows",
    "size_bytes",
    "sha256",
    "owner",
    "created_at",
    "urls.web",
)
DATASETS = Endpoint(
    "GET",
    "/api/v1/datasets/",
    params=(*LIST_PARAMS, "name", "state", "latest"),
    fields=(*PAGE, *(f"results.{name}" for name in DATASET_FIELDS)),
)
DATASET_DETAIL_FIELDS = (
    *DATASET_FIELDS,
    "schema",
    "preview",
    "preprocessing",
    "versions.id",
    "versions.version",
    "versions.state",
)
DATASET_UPLOAD = Endpoint(
    "POST",
    "/api/v1/datasets/",
    status=201,
    media="multipart/form-data",
    body=(
        "file",
        "name",
        "description",
        "format",
        "task",
        "target",
        "missing",
        "normalization",
        "split_seed",
        "val_fraction",
        "test_fraction",
    ),
    fields=DATASET_DETAIL_FIELDS,
)
DATASET_DETAIL = Endpoint("GET", "/api/v1/datasets/{dataset_id}/", fields=DATASET_DETAIL_FIELDS)
DATASET_DELETE = Endpoint("DELETE", "/api/v1/datasets/{dataset_id}/", status=204)
MODELS = Endpoint(
    "GET",
    "/api/v1/models/",
    params=LIST_PARAMS,
    fields=(*PAGE, "results.id", "results.slug", "results.name", "results.family"),
)
NODES = Endpoint(
    "GET",
    "/api/v1/nodes/",
    params=LIST_PARAMS,
    fields=(
        *PAGE,
        "results.name",
        "results.status",
        "results.pool",
        "results.cpu_slots",
        "results.slots_in_use",
        "results.gpu_count",
        "results.gpus_in_use",
        "results.gpu_model",
        "results.last_heartbeat_at",
    ),
)
POOLS = Endpoint(
    "GET",
    "/api/v1/pools/",
    fields=("name", "nodes", "gpus", "gpus_free", "cpu_slots", "cpu_slots_free", "gpu_models"),
)

SEARCH_FIELDS = (
    "id",
    "name",
    "owner",
    "method",
    "metric",
    "direction",
    "max_trials",
    "parallelism",
    "pruner",
    "state",
    "state_reason",
    "trial_count",
    "best_trial.number",
    "best_trial.job",
    "best_trial.best_value",
    "created_at",
)
TRIAL_FIELDS = (
    "trials.number",
    "trials.job",
    "trials.job_state",
    "trials.params",
    "trials.state",
    "trials.best_value",
    "trials.final_value",
    "trials.pruned_comparison",
)
SEARCHES_LIST = Endpoint(
    "GET",
    "/api/v1/searches/",
    params=LIST_PARAMS,
    fields=(*PAGE, *(f"results.{name}" for name in SEARCH_FIELDS)),
)
SEARCH_CREATE = Endpoint(
    "POST",
    "/api/v1/searches/",
    status=201,
    body=(
        "name",
        "job.dataset",
        "job.model",
        "space.name",
        "space.kind",
        "method",
        "metric",
        "max_trials",
        "parallelism",
        "seed",
        "early_stopping.kind",
    ),
    fields=SEARCH_FIELDS,
)
SEARCH_DETAIL = Endpoint(
    "GET", "/api/v1/searches/{search_id}/", fields=(*SEARCH_FIELDS, *TRIAL_FIELDS)
)
SEARCH_CANCEL = Endpoint(
    "POST", "/api/v1/searches/{search_id}/cancel/", status=202, fields=SEARCH_FIELDS
)
TEMPLATE_FIELDS = ("id", "name", "owner", "team", "spec", "updated_at")
TEMPLATES = Endpoint(
    "GET",
    "/api/v1/job-templates/",
    params=LIST_PARAMS,
    fields=(*PAGE, *(f"results.{name}" for name in TEMPLATE_FIELDS)),
)
TEMPLATE_SAVE = Endpoint(
    "POST",
    "/api/v1/job-templates/",
    status=201,
    body=("name", "team", "spec", "from_job", "replace"),
    fields=TEMPLATE_FIELDS,
)
# The body is the overrides themselves, any part of a job request.
TEMPLATE_SUBMIT = Endpoint(
    "POST", "/api/v1/job-templates/{template_id}/submit/", status=201, fields=JOB_FIELDS
)
TEMPLATE_DELETE = Endpoint("DELETE", "/api/v1/job-templates/{template_id}/", status=204)

ENDPOINTS = (
    JOBS_LIST,
    JOB_SUBMIT,
    JOB_DETAIL,
    JOB_WHY,
    JOB_CANCEL,
    JOB_LOGS,
    DATASETS,
    DATASET_UPLOAD,
    DATASET_DETAIL,
    DATASET_DELETE,
    MODELS,
    NODES,
    POOLS,
    SEARCHES_LIST,
    SEARCH_CREATE,
    SEARCH_DETAIL,
    SEARCH_CANCEL,
    TEMPLATES,
    TEMPLATE_SAVE,
    TEMPLATE_SUBMIT,
    TEMPLATE_DELETE,
)
# The largest page the list endpoints are asked for: the CLI pages through the rest.
PAGE_LIMIT = 100


def error_message(response: httpx.Response) -> str:
    """The API's own words: `{"detail": ...}` or `{"errors": {"field": [...]}}`."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:200].strip()}"
    if isinstance(body, dict) and isinstance(body.get("errors"), dict):
        parts = []
        for key, messages in body["errors"].items():
            text = "; ".join(str(m) for m in messages) if isinstance(messages, list) else messages
            parts.append(text if key == "__all__" else f"{key}: {text}")
        return "\n".join(parts)
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])
    return f"HTTP {response.status_code}"


class ProgressReader:
    """A file that reports how much of it has been read (httpx reads uploads in chunks)."""

    def __init__(self, handle: BinaryIO, on_progress: Callable[[int], None] | None) -> None:
        self.handle, self.on_progress = handle, on_progress

    def read(self, size: int = -1) -> bytes:
        chunk = self.handle.read(size)
        if self.on_progress is not None and chunk:
            self.on_progress(len(chunk))
        return chunk

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.handle.seek(offset, whence)

    def tell(self) -> int:
        return self.handle.tell()

    def fileno(self) -> int:
        return self.handle.fileno()


class Client:
    """A bearer-token client for one portal. Errors become `CliError`s with exit codes."""

    def __init__(self, url: str, token: str, *, timeout: float = 30.0) -> None:
        self.url = url
        self.token = token
        self.http = httpx.Client(
            base_url=url,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout,
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def call(
        self,
        endpoint: Endpoint,
        *,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
        **path: object,
    ) -> Any:
        sent = {key: value for key, value in (params or {}).items() if value is not None}
        unknown = set(sent) - set(endpoint.params)
        assert not unknown, f"{endpoint.path} is not declared to take {unknown}"
        try:
            response = self.http.request(
                endpoint.method, endpoint.path.format(**path), params=sent, json=json
            )
        except httpx.TransportError as exc:
            raise CliError(
                f"cannot reach the portal at {self.url}: {exc}", ExitCode.UNREACHABLE
            ) from exc
        return self._answer(endpoint, response)

    def _answer(self, endpoint: Endpoint, response: httpx.Response) -> Any:
        if response.status_code != endpoint.status:
            message = error_message(response)
            if response.status_code == 401:
                message = f"{message} (log in again: `trainyard login`)"
            raise CliError(message, ExitCode.API, status=response.status_code)
        if response.status_code == 204:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise CliError(
                f"the portal at {self.url} answered something that is not JSON", ExitCode.API
            ) from exc

    def upload(
        self,
        endpoint: Endpoint,
        *,
        form: dict[str, Any],
        path: Path,
        on_progress: Callable[[int], None] | None = None,
    ) -> Any:
        """Send `path` as the form's `file`, streamed in chunks (never read whole), with the
        other fields; `on_progress(n)` is told of every `n` bytes sent."""
        assert endpoint.media == "multipart/form-data", endpoint
        unknown = set(form) - set(endpoint.body)
        assert not unknown, f"{endpoint.path} is not declared to take {unknown}"
        fields = {key: str(value) for key, value in form.items() if value is not None}
        try:
            with path.open("rb") as handle:
                reader = ProgressReader(handle, on_progress)
                response = self.http.request(
                    endpoint.method,
                    endpoint.path,
                    data=fields,
                    files={
                        "file": (path.name, cast(IO[bytes], reader), "application/octet-stream")
                    },
                    # A large file takes long to send and to store; only silence is an error.
                    timeout=httpx.Timeout(self.http.timeout.read, write=300.0),
                )
        except OSError as exc:
            raise CliError(f"cannot read {path}: {exc.strerror}", ExitCode.USAGE) from exc
        except httpx.TransportError as exc:
            raise CliError(
                f"cannot reach the portal at {self.url}: {exc}", ExitCode.UNREACHABLE
            ) from exc
        return self._answer(endpoint, response)

    def pages(self, endpoint: Endpoint, *, limit: int | None, **params: Any) -> list[Any]:
        """Every item of a paginated list (or the first `limit`), following `offset`."""
        items: list[Any] = []
        while limit is None or len(items) < limit:
            want = PAGE_LIMIT if limit is None else min(PAGE_LIMIT, limit - len(items))
            page = self.call(endpoint, params={**params, "limit": want, "offset": len(items)})
            items.extend(page["results"])
            if not page["next"] or not page["results"]:
                break
        return items
