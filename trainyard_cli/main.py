"""The `trainyard` commands. Each parses its options, makes its API calls through
`trainyard_cli.api.Client`, and prints through `trainyard_cli.output`.

Exit codes (`api.ExitCode`): 0 ok; 1 the followed job failed or was cancelled; 2 usage error
(bad options, a bad spec file, not logged in); 3 the portal refused (its message is shown);
4 the portal cannot be reached.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TransferSpeedColumn,
)

from trainyard_cli import api, config, output
from trainyard_cli.api import Client, CliError, ExitCode
from trainyard_cli.follow import TERMINAL, JobStream

app = typer.Typer(
    name="trainyard",
    help="Submit and watch training jobs on a Trainyard portal.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

Json = Annotated[bool, typer.Option("--json", help="Print JSON only, for scripts.")]
JobId = Annotated[int, typer.Argument(help="The job's id.", min=1)]


@contextmanager
def errors_handled(as_json: bool) -> Iterator[None]:
    """Turn the CLI's errors into a message on stderr and the exit code they carry."""
    try:
        yield
    except CliError as exc:
        output.print_error(exc.message, as_json=as_json, status=exc.status)
        raise typer.Exit(int(exc.code)) from exc
    except config.ConfigError as exc:
        output.print_error(str(exc), as_json=as_json)
        raise typer.Exit(int(ExitCode.USAGE)) from exc


def connect() -> Client:
    settings = config.settings_load()
    return Client(settings.url, settings.token)


# ---- login ------------------------------------------------------------------------------------


@app.command()
def login(
    url: Annotated[str | None, typer.Option(help="The portal, e.g. http://127.0.0.1:8000.")] = None,
    token: Annotated[
        str | None, typer.Option(help="A personal access token (ty_...); prompted if omitted.")
    ] = None,
    as_json: Json = False,
) -> None:
    """Check a portal URL and token, and save them to the config file (mode 0600).

    Defaults come from TRAINYARD_URL and TRAINYARD_TOKEN, then the saved file; anything still
    missing is asked for.
    """
    with errors_handled(as_json):
        stored = config.config_read()
        url = url or os.environ.get(config.URL_ENV) or None
        if url is None:
            url = typer.prompt("Portal URL", default=stored.get("url") or "http://127.0.0.1:8000")
        token = token or os.environ.get(config.TOKEN_ENV) or None
        if token is None:
            token = typer.prompt("Access token", hide_input=True)
        url = config.normalise_url(url)
        with Client(url, token) as client:
            client.call(api.JOBS_LIST, params={"limit": 1})  # 401 here: the token is refused
        path = config.config_write(url=url, token=token)
        if as_json:
            output.print_json({"url": url, "config": str(path)})
        else:
            output.stdout().print(f"Logged in to {url}; saved to {path}")


# ---- jobs -------------------------------------------------------------------------------------

JOB_COLUMNS = [
    ("ID", "id"),
    ("NAME", "name"),
    ("STATE", "state"),
    ("OWNER", "owner"),
    ("DATASET", "dataset.name"),
    ("MODEL", "model.name"),
    ("CREATED", "created_at"),
]


@app.command()
def jobs(
    state: Annotated[
        str | None, typer.Option(help="queued, scheduled, running, cancelling, succeeded, ...")
    ] = None,
    owner: Annotated[str | None, typer.Option(help="Only this user's jobs.")] = None,
    dataset: Annotated[int | None, typer.Option(help="Only jobs on this dataset id.")] = None,
    model: Annotated[int | None, typer.Option(help="Only jobs of this model id.")] = None,
    name: Annotated[str | None, typer.Option(help="Only jobs whose name contains this.")] = None,
    ordering: Annotated[
        str | None,
        typer.Option(help="created_at, priority, state, name or id; a leading - reverses."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many jobs.")] = 20,
    as_json: Json = False,
) -> None:
    """List the jobs you can see, newest first."""
    with errors_handled(as_json), connect() as client:
        found = client.pages(
            api.JOBS_LIST,
            limit=limit,
            state=state,
            owner=owner,
            dataset=dataset,
            model=model,
            name=name,
            ordering=ordering,
        )
        if as_json:
            output.print_json(found)
        else:
            output.print_table(found, JOB_COLUMNS, empty="No jobs.")


@app.command()
def status(job_id: JobId, as_json: Json = False) -> None:
    """Show one job: its state, why, its resources and attempts."""
    with errors_handled(as_json), connect() as client:
        job = client.call(api.JOB_DETAIL, job_id=job_id)
        if as_json:
            output.print_json(job)
            return
        console = output.stdout()
        resources = job["resources"]
        rows = [
            ("job", f"{job['id']} {job['name']}".strip()),
            ("state", job["state"] + (f" ({job['state_reason']})" if job["state_reason"] else "")),
            ("owner", job["owner"]),
            ("dataset", output.dig(job, "dataset.name")),
            ("model", output.dig(job, "model.name")),
            ("epochs", output.dig(job, "spec.training.epochs")),
            (
                "resources",
                f"{resources['nodes']} node(s) x {resources['procs_per_node']} proc(s), "
                f"{resources['gpus_per_node']} GPU(s) per node",
            ),
            ("priority", job["priority"]),
            ("restarts", job["restarts"]),
            ("created", job["created_at"]),
            ("started", job["started_at"]),
            ("finished", job["finished_at"]),
        ]
        for attempt in job["attempts"]:
            rows.append(
                (
                    f"attempt {attempt['number']}",
                    f"{attempt['state']} on {output.cell(attempt['nodes'])} (id {attempt['id']})",
                )
            )
        for label, value in rows:
            console.print(f"[bold]{label:>10}[/]  ", end="")
            console.print(output.cell(value), markup=False)


@app.command()
def why(job_id: JobId, as_json: Json = False) -> None:
    """Why a queued job waits: its place in its pool's queue, the jobs ahead, how many nodes
    fail each requirement, the quota that binds, and when it may start."""
    with errors_handled(as_json), connect() as client:
        job = client.call(api.JOB_WHY, job_id=job_id)
        if as_json:
            output.print_json(
                {
                    "id": job["id"],
                    "state": job["state"],
                    "estimated_start": job["estimated_start"],
                    "why_pending": job["why_pending"],
                }
            )
            return
        console = output.stdout()
        why_pending = job["why_pending"]
        if why_pending is None:
            console.print(f"job {job['id']} is {job['state']}: {job['state_reason']}", markup=False)
            return
        rows: list[tuple[str, object]] = [
            ("waiting", f"for {why_pending['waiting_for']}: {job['state_reason']}"),
            (
                "position",
                f"{why_pending['position']} of {why_pending['queue_length']} "
                f"in queue {why_pending['queue'] or '-'}",
            ),
            ("start", job["estimated_start"] or "unknown"),
        ]
        if why_pending["reservation"]:
            rows.append(("reserved", ", ".join(why_pending["reservation"]["nodes"])))
        quota = why_pending["quota"]
        rows.append(
            ("quota", f"{quota['message']}; {quota['headroom']:g} left" if quota else "none binds")
        )
        for ahead in why_pending["ahead"]:
            who = f" {ahead['owner']}, {ahead['size']}" if ahead["owner"] else ""
            rows.append(("ahead", f"#{ahead['id']}{who}"))
        for constraint in why_pending["constraints"]:
            rows.append((f"{constraint['nodes']} nodes", constraint["label"]))
        rows.append(
            (f"{why_pending['nodes_fit']} nodes", f"of {why_pending['nodes_total']} could take it")
        )
        for label, value in rows:
            console.print(f"[bold]{label:>10}[/]  ", end="")
            console.print(output.cell(value), markup=False)


@app.command()
def cancel(job_id: JobId, as_json: Json = False) -> None:
    """Cancel a job. Cancelling a finished job changes nothing."""
    with errors_handled(as_json), connect() as client:
        job = client.call(api.JOB_CANCEL, job_id=job_id)
        if as_json:
            output.print_json(job)
        else:
            output.stdout().print(f"job {job['id']}: {job['state']}", markup=False)


# ---- submit -----------------------------------------------------------------------------------


def spec_load(path: Path) -> dict[str, Any]:
    """A job request from a YAML or JSON file (JSON is YAML)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}", ExitCode.USAGE) from exc
    except yaml.YAMLError as exc:
        raise CliError(f"{path} is not valid YAML or JSON: {exc}", ExitCode.USAGE) from exc
    if not isinstance(data, dict):
        raise CliError(f"{path} must hold a mapping (a job request)", ExitCode.USAGE)
    return data


def catalog_id(client: Client, endpoint: api.Endpoint, value: object, what: str) -> object:
    """A dataset or model as an id; a name or slug is looked up in the catalog."""
    if not isinstance(value, str) or value.isdigit():
        return int(value) if isinstance(value, str) else value
    # Of a dataset's versions, the newest ready one (the list is newest first).
    wanted = {"state": "ready"} if endpoint is api.DATASETS else {}
    items = client.pages(endpoint, limit=None, **wanted)
    for item in items:
        if value.lower() in (str(item["slug"]).lower(), str(item["name"]).lower()):
            return item["id"]
    known = ", ".join(f"{item['slug']} ({item['id']})" for item in items) or "none"
    raise CliError(f"no {what} named {value!r}; you can see: {known}", ExitCode.USAGE)


def put(body: dict[str, Any], dotted: str, value: object) -> None:
    if value is None:
        return
    *parents, last = dotted.split(".")
    for key in parents:
        body = body.setdefault(key, {})
    body[last] = value


@app.command()
def submit(
    spec: Annotated[
        Path | None, typer.Argument(help="A job request as YAML or JSON (docs/api.md).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="The job's name.")] = None,
    dataset: Annotated[str | None, typer.Option(help="Dataset id, slug or name.")] = None,
    model: Annotated[str | None, typer.Option(help="Model id, slug or name.")] = None,
    epochs: Annotated[int | None, typer.Option(min=1)] = None,
    batch_size: Annotated[int | None, typer.Option(min=1)] = None,
    learning_rate: Annotated[float | None, typer.Option()] = None,
    optimizer: Annotated[str | None, typer.Option(help="adam or sgd.")] = None,
    loss: Annotated[str | None, typer.Option(help="cross_entropy or mse.")] = None,
    hidden_sizes: Annotated[
        str | None, typer.Option(help="Comma-separated layer widths, e.g. 32,32.")
    ] = None,
    nodes: Annotated[int | None, typer.Option(min=1)] = None,
    procs_per_node: Annotated[int | None, typer.Option(min=1)] = None,
    gpus_per_node: Annotated[int | None, typer.Option(min=0)] = None,
    pool: Annotated[str | None, typer.Option(help="Run only on this pool's nodes.")] = None,
    priority: Annotated[int | None, typer.Option()] = None,
    max_restarts: Annotated[int | None, typer.Option(min=0)] = None,
    follow_job: Annotated[
        bool, typer.Option("--follow", "-f", help="Then follow it, as `trainyard follow`.")
    ] = False,
    as_json: Json = False,
) -> None:
    """Submit a job from a spec file and/or options (options override the file)."""
    with errors_handled(as_json), connect() as client:
        body = spec_load(spec) if spec is not None else {}
        sizes = None
        if hidden_sizes is not None:
            try:
                sizes = [int(size) for size in hidden_sizes.split(",")]
            except ValueError as exc:
                raise CliError("--hidden-sizes takes widths like 32,32", ExitCode.USAGE) from exc
        for dotted, value in [
            ("name", name),
            ("dataset", dataset),
            ("model", model),
            ("hyperparameters.hidden_sizes", sizes),
            ("training.epochs", epochs),
            ("training.batch_size", batch_size),
            ("training.learning_rate", learning_rate),
            ("training.optimizer", optimizer),
            ("training.loss", loss),
            ("resources.nodes", nodes),
            ("resources.procs_per_node", procs_per_node),
            ("resources.gpus_per_node", gpus_per_node),
            ("resources.pool", pool),
            ("priority", priority),
            ("max_restarts", max_restarts),
        ]:
            put(body, dotted, value)
        for key, endpoint in (("dataset", api.DATASETS), ("model", api.MODELS)):
            if key not in body:
                raise CliError(f"say which {key}: --{key} or `{key}:` in the spec", ExitCode.USAGE)
            body[key] = catalog_id(client, endpoint, body[key], key)
        job = client.call(api.JOB_SUBMIT, json=body)
        if as_json:
            output.print_json(job)
        else:
            output.stdout().print(f"job {job['id']} submitted: {job['state']}", markup=False)
        if follow_job:
            raise typer.Exit(int(follow_stream(client, job, as_json=as_json)))


# ---- follow and logs --------------------------------------------------------------------------


class EpochProgress:
    """Epochs and steps done, and an ETA from the points' own timestamps (so a backfill of
    a long-running job does not look instant)."""

    def __init__(self, epochs: int | None) -> None:
        self.epochs = epochs
        self.done = 0
        self.step = 0
        self.steps_per_epoch: float | None = None
        self.first_ts: float | None = None
        self.last_val_ts: float | None = None
        self.loss: float | None = None
        self.accuracy: float | None = None
        self.val_loss: float | None = None

    def add(self, point: dict[str, Any]) -> bool:
        """Take one point; True when it completed an epoch."""
        ts = point.get("ts")
        if self.first_ts is None and isinstance(ts, int | float):
            self.first_ts = float(ts)
        self.step = max(self.step, int(point["step"]))
        if point["split"] == "train":
            self.loss = point["loss"]
            return False
        self.done = max(self.done, int(point["epoch"]))
        self.val_loss, self.accuracy = point["loss"], point["accuracy"]
        if isinstance(ts, int | float):
            self.last_val_ts = float(ts)
        if self.done:
            self.steps_per_epoch = self.step / self.done
        return True

    def eta(self) -> str:
        if not (self.epochs and self.done and self.first_ts and self.last_val_ts):
            return "-:--:--"
        per_epoch = max(0.0, self.last_val_ts - self.first_ts) / self.done
        seconds = round(per_epoch * max(0, self.epochs - self.done))
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"

    def summary(self) -> str:
        steps = f"step {self.step}"
        if self.steps_per_epoch and self.epochs:
            steps += f"/{math.ceil(self.steps_per_epoch * self.epochs)}"
        parts = [steps]
        for label, value in (
            ("loss", self.loss),
            ("val loss", self.val_loss),
            ("accuracy", self.accuracy),
        ):
            parts.append(f"{label} {'-' if value is None else f'{value:.4f}'}")
        return "  ".join(parts)


def follow_stream(client: Client, job: dict[str, Any], *, as_json: bool) -> ExitCode:
    """Follow `job` to its end; the exit code says how it ended."""
    epochs = output.dig(job, "spec.training.epochs")
    progress = EpochProgress(epochs if isinstance(epochs, int) else None)
    console = output.stdout()
    live = not as_json and console.is_terminal
    bar = Progress(
        TextColumn("[bold]epochs"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("ETA {task.fields[eta]}  {task.fields[stats]}"),
        console=console,
        disable=not live,
    )
    last_state = None
    with bar:
        task = bar.add_task("epochs", total=progress.epochs, eta="-:--:--", stats="")
        # A finished job has nothing to stream: its final state is all there is to say.
        stream: Iterable[dict[str, Any]] = (
            JobStream(client, job) if job["state"] not in TERMINAL else ()
        )
        for message in stream:
            if as_json:
                output.print_json(message)
                continue
            # The terminal state is the last line, with its reason, once the stream ends.
            if (
                message["type"] == "state"
                and message["state"] != last_state
                and message["state"] not in TERMINAL
            ):
                last_state = message["state"]
                reason = f" ({message['reason']})" if message.get("reason") else ""
                bar.console.print(f"job {job['id']}: {last_state}{reason}", markup=False)
            elif message["type"] == "metrics":
                for point in message["points"]:
                    if progress.add(point) and not live:
                        total = progress.epochs or "?"
                        console.print(
                            f"epoch {progress.done}/{total}  {progress.summary()}  "
                            f"ETA {progress.eta()}",
                            markup=False,
                        )
                bar.update(
                    task, completed=progress.done, eta=progress.eta(), stats=progress.summary()
                )
    final = client.call(api.JOB_DETAIL, job_id=job["id"])
    code = ExitCode.OK if final["state"] == "succeeded" else ExitCode.JOB_FAILED
    if as_json:
        output.print_json(
            {
                "type": "final",
                "job": final["id"],
                "state": final["state"],
                "reason": final["state_reason"],
                "exit_code": int(code),
            }
        )
    else:
        reason = f": {final['state_reason']}" if final["state_reason"] else ""
        colour = "green" if code == ExitCode.OK else "red"
        console.print(f"[bold {colour}]job {final['id']} {final['state']}[/]", end="")
        console.print(reason, markup=False)
    return code


@app.command()
def follow(job_id: JobId, as_json: Json = False) -> None:
    """Follow a job live: epochs with ETA, loss and accuracy, then its final state.

    Exits 0 if the job succeeded, 1 if it failed or was cancelled. With --json, prints one
    JSON object per message (JSON Lines), then {"type": "final", ...}.
    """
    with errors_handled(as_json), connect() as client:
        job = client.call(api.JOB_DETAIL, job_id=job_id)
        raise typer.Exit(int(follow_stream(client, job, as_json=as_json)))


LOG_POLL_S = 1.0


@app.command()
def logs(
    job_id: JobId,
    follow_logs: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines until the job ends.")
    ] = False,
    rank: Annotated[int | None, typer.Option(min=0, help="Only this node rank's lines.")] = None,
    as_json: Json = False,
) -> None:
    """Print a job's log lines (every rank's stdout and stderr), oldest first.

    With --json, one JSON object per line (JSON Lines).
    """
    with errors_handled(as_json), connect() as client:
        after, ending = "", False
        while True:
            page = client.call(
                api.JOB_LOGS,
                params={"after": after, "limit": 1000},
                job_id=job_id,
            )
            for line in page["lines"]:
                if rank is not None and line["node_rank"] != rank:
                    continue
                if as_json:
                    sys.stdout.write(json.dumps(line) + "\n")
                else:
                    sys.stdout.write(
                        f"[node {line['node_rank']} {line['stream']}] {line['line']}\n"
                    )
            sys.stdout.flush()
            # The server's cursor: the last seq of each node share (docs/telemetry.md).
            after = page["next"]["after"]
            if page["has_more"]:
                continue
            if not follow_logs or ending:
                return
            # Lines travel apart from the exit event: read once more after the job ended.
            ending = client.call(api.JOB_DETAIL, job_id=job_id)["state"] in TERMINAL
            time.sleep(LOG_POLL_S)


# ---- catalog and cluster ----------------------------------------------------------------------


def list_command(
    endpoint: api.Endpoint, columns: list[tuple[str, str]], *, as_json: bool, empty: str
) -> None:
    with errors_handled(as_json), connect() as client:
        # Paginated lists take limit and offset; the pools list is one small array.
        paginated = bool(endpoint.params)
        items = client.pages(endpoint, limit=None) if paginated else client.call(endpoint)
        if as_json:
            output.print_json(items)
        else:
            output.print_table(items, columns, empty=empty)


datasets_app = typer.Typer(
    help="Upload, list, show and delete datasets (each upload of a name is a new version).",
    no_args_is_help=True,
)
app.add_typer(datasets_app, name="datasets")
DatasetId = Annotated[int, typer.Argument(help="The dataset version's id.", min=1)]
DATASET_COLUMNS = [
    ("ID", "id"),
    ("NAME", "name"),
    ("VERSION", "version"),
    ("STATE", "state"),
    ("FORMAT", "format"),
    ("TASK", "task"),
    ("ROWS", "num_rows"),
    ("OWNER", "owner"),
]
SETTLED = frozenset({"ready", "invalid"})
DATASET_POLL_S = 1.0


@datasets_app.command("list")
def datasets_list(
    name: Annotated[str | None, typer.Option(help="Only versions of this name.")] = None,
    state: Annotated[
        str | None, typer.Option(help="uploaded, validating, ready or invalid.")
    ] = None,
    latest: Annotated[bool, typer.Option(help="Only the newest version of each name.")] = False,
    as_json: Json = False,
) -> None:
    """List the dataset versions you can see (the built-ins, yours, your teams')."""
    with errors_handled(as_json), connect() as client:
        params = {"name": name, "state": state, "latest": "true" if latest else None}
        items = client.pages(api.DATASETS, limit=None, **params)
        if as_json:
            output.print_json(items)
        else:
            output.print_table(items, DATASET_COLUMNS, empty="No datasets.")


def dataset_print(dataset: dict[str, Any]) -> None:
    console = output.stdout()
    console.print(
        f"[bold]{dataset['name']}[/] v{dataset['version']} (#{dataset['id']}): {dataset['state']}",
        markup=True,
    )
    if dataset.get("state_reason"):
        console.print(dataset["state_reason"], markup=False, soft_wrap=True)
    classes = ", ".join(dataset.get("classes") or []) or "-"
    console.print(
        f"{dataset['format']}, {dataset['task']} on {dataset['target'] or '-'}; "
        f"{dataset['num_rows']} rows; classes: {classes}",
        markup=False,
    )
    if dataset.get("schema"):
        output.print_table(
            dataset["schema"], [("COLUMN", "name"), ("TYPE", "type"), ("ROLE", "role")], empty=""
        )
    versions = dataset.get("versions") or []
    if len(versions) > 1:
        shown = ", ".join(f"v{v['version']} #{v['id']} {v['state']}" for v in versions)
        console.print(f"versions: {shown}", markup=False)


@datasets_app.command("show")
def datasets_show(dataset_id: DatasetId, as_json: Json = False) -> None:
    """One dataset version: its state, schema, preprocessing and the other versions."""
    with errors_handled(as_json), connect() as client:
        dataset = client.call(api.DATASET_DETAIL, dataset_id=dataset_id)
        if as_json:
            output.print_json(dataset)
        else:
            dataset_print(dataset)


def dataset_wait(client: Client, dataset: dict[str, Any], *, timeout: float) -> dict[str, Any]:
    """Poll the dataset until validation settles (ready or invalid), or `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while dataset["state"] not in SETTLED:
        if time.monotonic() > deadline:
            raise CliError(
                f"dataset #{dataset['id']} is still {dataset['state']} after {timeout:g}s",
                ExitCode.API,
            )
        time.sleep(DATASET_POLL_S)
        dataset = client.call(api.DATASET_DETAIL, dataset_id=dataset["id"])
    return dataset


@datasets_app.command("upload")
def datasets_upload(
    file: Annotated[
        Path, typer.Argument(help="CSV, Parquet, .npz or a zip of image folders.", dir_okay=False)
    ],
    name: Annotated[
        str | None, typer.Option(help="Default: the file name. An existing name: a new version.")
    ] = None,
    target: Annotated[
        str | None, typer.Option(help="The column to predict (CSV, Parquet).")
    ] = None,
    task: Annotated[str | None, typer.Option(help="classification (default) or regression.")] = (
        None
    ),
    format: Annotated[
        str | None, typer.Option("--format", help="csv, parquet, npz or images; default: ext.")
    ] = None,
    description: Annotated[str | None, typer.Option(help="A note for people.")] = None,
    missing: Annotated[str | None, typer.Option(help="drop (default) or impute.")] = None,
    normalization: Annotated[
        str | None, typer.Option(help="standard (default), minmax or none.")
    ] = None,
    split_seed: Annotated[int | None, typer.Option(help="Seed of the split.")] = None,
    val_fraction: Annotated[float | None, typer.Option(help="Validation share.")] = None,
    test_fraction: Annotated[float | None, typer.Option(help="Test share.")] = None,
    wait: Annotated[
        bool, typer.Option(help="Wait for validation; exit 1 with its message if invalid.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds --wait waits at most.")] = 600.0,
    as_json: Json = False,
) -> None:
    """Upload a dataset file (streamed, with a progress bar) as a new dataset version."""
    with errors_handled(as_json), connect() as client:
        if not file.is_file():
            raise CliError(f"{file} is not a file", ExitCode.USAGE)
        form = {
            "name": name,
            "target": target,
            "task": task,
            "format": format,
            "description": description,
            "missing": missing,
            "normalization": normalization,
            "split_seed": split_seed,
            "val_fraction": val_fraction,
            "test_fraction": test_fraction,
        }
        size = file.stat().st_size
        # On stderr, so stdout stays the dataset's JSON or its summary.
        with Progress(
            TextColumn("uploading {task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=output.stderr(),
            transient=True,
            disable=as_json,
        ) as progress:
            bar = progress.add_task(file.name, total=size)
            dataset = client.upload(
                api.DATASET_UPLOAD,
                form=form,
                path=file,
                on_progress=lambda n: progress.advance(bar, n),
            )
        if not as_json:
            output.stdout().print(
                f"Uploaded {dataset['name']} v{dataset['version']} (#{dataset['id']}); "
                f"{dataset['urls']['web']}",
                markup=False,
            )
        if wait:
            dataset = dataset_wait(client, dataset, timeout=timeout)
        if as_json:
            output.print_json(dataset)
        elif wait:
            dataset_print(dataset)
        if dataset["state"] == "invalid":
            if as_json:
                output.print_error(dataset["state_reason"], as_json=True)
            raise typer.Exit(int(api.DATASET_INVALID))


@datasets_app.command("delete")
def datasets_delete(dataset_id: DatasetId, as_json: Json = False) -> None:
    """Delete a dataset version and its file (refused while a job uses it)."""
    with errors_handled(as_json), connect() as client:
        client.call(api.DATASET_DELETE, dataset_id=dataset_id)
        if as_json:
            output.print_json({"deleted": dataset_id})
        else:
            output.stdout().print(f"Deleted dataset #{dataset_id}.")


@app.command()
def models(as_json: Json = False) -> None:
    """List the model architectures you can train."""
    columns = [("ID", "id"), ("SLUG", "slug"), ("NAME", "name"), ("FAMILY", "family")]
    list_command(api.MODELS, columns, as_json=as_json, empty="No models.")


@app.command()
def pools(as_json: Json = False) -> None:
    """List pools: their nodes, and the GPUs and CPU slots free now."""
    columns = [
        ("POOL", "name"),
        ("NODES", "nodes"),
        ("GPUS FREE", "gpus_free"),
        ("GPUS", "gpus"),
        ("CPU SLOTS FREE", "cpu_slots_free"),
        ("CPU SLOTS", "cpu_slots"),
        ("GPU MODELS", "gpu_models"),
    ]
    list_command(api.POOLS, columns, as_json=as_json, empty="No pools.")


@app.command()
def nodes(as_json: Json = False) -> None:
    """List nodes with their usage (admins only)."""
    columns = [
        ("NAME", "name"),
        ("STATUS", "status"),
        ("POOL", "pool"),
        ("SLOTS USED", "slots_in_use"),
        ("SLOTS", "cpu_slots"),
        ("GPUS USED", "gpus_in_use"),
        ("GPUS", "gpu_count"),
        ("GPU MODEL", "gpu_model"),
        ("LAST HEARTBEAT", "last_heartbeat_at"),
    ]
    list_command(api.NODES, columns, as_json=as_json, empty="No nodes.")


# ---- searches ---------------------------------------------------------------------------------

searches_app = typer.Typer(
    help="Hyperparameter searches: start one from a file, list, show, cancel.",
    no_args_is_help=True,
)
app.add_typer(searches_app, name="searches")

SearchId = Annotated[int, typer.Argument(help="The search's id.", min=1)]
SEARCH_COLUMNS = [
    ("ID", "id"),
    ("NAME", "name"),
    ("METHOD", "method"),
    ("METRIC", "metric"),
    ("TRIALS", "trial_count"),
    ("BEST", "best_trial.best_value"),
    ("STATE", "state"),
]
TRIAL_COLUMNS = [
    ("#", "number"),
    ("JOB", "job"),
    ("PARAMS", "params"),
    ("BEST", "best_value"),
    ("FINAL", "final_value"),
    ("STATE", "state"),
    ("WHY", "pruned_comparison"),
]


@searches_app.command("create")
def searches_create(
    spec: Annotated[Path, typer.Argument(help="A search request as YAML or JSON (docs/api.md).")],
    as_json: Json = False,
) -> None:
    """Start a search; `job.dataset` and `job.model` may be names."""
    with errors_handled(as_json), connect() as client:
        body = spec_load(spec)
        job = body.get("job")
        if isinstance(job, dict):
            for key, endpoint in (("dataset", api.DATASETS), ("model", api.MODELS)):
                if key in job:
                    job[key] = catalog_id(client, endpoint, job[key], key)
        search = client.call(api.SEARCH_CREATE, json=body)
        if as_json:
            output.print_json(search)
        else:
            output.stdout().print(f"search {search['id']}: {search['state']}", markup=False)


@searches_app.command("list")
def searches_list(as_json: Json = False) -> None:
    """List the searches you can see, newest first."""
    list_command(api.SEARCHES_LIST, SEARCH_COLUMNS, as_json=as_json, empty="No searches.")


@searches_app.command("show")
def searches_show(search_id: SearchId, as_json: Json = False) -> None:
    """One search: its state, the best trial, and every trial."""
    with errors_handled(as_json), connect() as client:
        search = client.call(api.SEARCH_DETAIL, search_id=search_id)
        if as_json:
            output.print_json(search)
            return
        console = output.stdout()
        best = search["best_trial"]
        console.print(
            f"search {search['id']} {search['name']}: {search['state']} "
            f"({search['method']}, {search['direction']} {search['metric']}); best: "
            + (f"trial {best['number']} = {best['best_value']}" if best else "none yet"),
            markup=False,
        )
        output.print_table(search["trials"], TRIAL_COLUMNS, empty="No trials yet.")


@searches_app.command("cancel")
def searches_cancel(search_id: SearchId, as_json: Json = False) -> None:
    """Cancel a search and every unfinished trial."""
    with errors_handled(as_json), connect() as client:
        search = client.call(api.SEARCH_CANCEL, search_id=search_id)
        if as_json:
            output.print_json(search)
        else:
            output.stdout().print(f"search {search['id']}: {search['state']}", markup=False)


# ---- job templates ----------------------------------------------------------------------------

templates_app = typer.Typer(
    help="Job specs saved under a name (yours or a team's): list, save, submit, delete.",
    no_args_is_help=True,
)
app.add_typer(templates_app, name="templates")
TemplateRef = Annotated[str, typer.Argument(help="The template's id or name.")]
TEMPLATE_COLUMNS = [("ID", "id"), ("NAME", "name"), ("TEAM", "team"), ("OWNER", "owner")]


def template_id(client: Client, ref: str) -> int:
    """A template by id, or by name among those you can see (yours before a team's)."""
    if ref.isdigit():
        return int(ref)
    found = [t for t in client.pages(api.TEMPLATES, limit=None) if t["name"] == ref]
    if not found:
        raise CliError(f"no template named {ref!r}", ExitCode.USAGE)
    found.sort(key=lambda t: t["team"] is not None)
    return int(found[0]["id"])


def overrides_from(pairs: list[str]) -> dict[str, Any]:
    """`--set training.epochs=5 --set hyperparameters.hidden_sizes=[8,8]` as an object; each
    value is read as YAML, so numbers, booleans and lists keep their types."""
    body: dict[str, Any] = {}
    for pair in pairs:
        dotted, sep, text = pair.partition("=")
        if not sep or not dotted:
            raise CliError(f"--set takes path=value, not {pair!r}", ExitCode.USAGE)
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise CliError(f"--set {dotted}: {exc}", ExitCode.USAGE) from exc
        put(body, dotted, value)
    return body


@templates_app.command("list")
def templates_list(as_json: Json = False) -> None:
    """List the templates you can use: yours and your teams'."""
    list_command(api.TEMPLATES, TEMPLATE_COLUMNS, as_json=as_json, empty="No templates.")


@templates_app.command("save")
def templates_save(
    name: Annotated[str, typer.Argument(help="The template's name.")],
    spec: Annotated[
        Path | None, typer.Argument(help="A job request as YAML or JSON (docs/api.md).")
    ] = None,
    from_job: Annotated[
        int | None, typer.Option(help="Save this job's spec instead of a file.", min=1)
    ] = None,
    team: Annotated[str | None, typer.Option(help="Share it with one of your teams.")] = None,
    replace: Annotated[bool, typer.Option(help="Overwrite a template of that name.")] = False,
    as_json: Json = False,
) -> None:
    """Save a spec file, or a job's spec, as a template."""
    with errors_handled(as_json), connect() as client:
        if (spec is None) == (from_job is None):
            raise CliError("give a spec file or --from-job, not both", ExitCode.USAGE)
        body: dict[str, Any] = {"name": name, "replace": replace}
        if team:
            body["team"] = team
        if from_job is not None:
            body["from_job"] = from_job
        else:
            assert spec is not None
            request = spec_load(spec)
            for key, endpoint in (("dataset", api.DATASETS), ("model", api.MODELS)):
                if key in request:
                    request[key] = catalog_id(client, endpoint, request[key], key)
            body["spec"] = request
        template = client.call(api.TEMPLATE_SAVE, json=body)
        if as_json:
            output.print_json(template)
        else:
            output.stdout().print(
                f"template {template['id']} saved: {template['name']}", markup=False
            )


@templates_app.command("submit")
def templates_submit(
    ref: TemplateRef,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a field: --set training.epochs=5 (repeatable)."),
    ] = None,
    follow_job: Annotated[
        bool, typer.Option("--follow", "-f", help="Then follow it, as `trainyard follow`.")
    ] = False,
    as_json: Json = False,
) -> None:
    """Submit a job from a template, with overrides."""
    with errors_handled(as_json), connect() as client:
        overrides = overrides_from(set_ or [])
        job = client.call(api.TEMPLATE_SUBMIT, json=overrides, template_id=template_id(client, ref))
        if as_json:
            output.print_json(job)
        else:
            output.stdout().print(f"job {job['id']} submitted: {job['state']}", markup=False)
        if follow_job:
            raise typer.Exit(int(follow_stream(client, job, as_json=as_json)))


@templates_app.command("delete")
def templates_delete(ref: TemplateRef, as_json: Json = False) -> None:
    """Delete a template."""
    with errors_handled(as_json), connect() as client:
        found = template_id(client, ref)
        client.call(api.TEMPLATE_DELETE, template_id=found)
        if as_json:
            output.print_json({"deleted": found})
        else:
            output.stdout().print(f"template {found} deleted", markup=False)
