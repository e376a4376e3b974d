"""Following a job live over its WebSocket (`/ws/jobs/<id>/`, docs/telemetry.md).

The socket backfills everything after the cursor it is given, then streams live `metrics`,
`logs` and `state` messages. The channel layer behind it is lossy, so, as the portal's own
page does, this reconnects with backoff from the last contiguous `(attempt, seq)` when the
socket drops or a point is skipped; and because a lost `state` event would leave it waiting
forever, a quiet socket makes it read the job over REST.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI
from websockets.sync.client import connect
from websockets.typing import Origin

from trainyard_cli.api import JOB_DETAIL, Client, CliError, ExitCode

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
# The portal's refusals after the handshake (portal.lib.websocket).
REFUSALS = {
    4401: "the portal refused the token on the WebSocket (log in again: `trainyard login`)",
    4403: "this WebSocket is for admins",
    4404: "no such job, or not one you can see",
}
QUIET_S = 5.0  # a socket silent this long makes us check the job's state over REST
BACKOFF_S = (0.5, 15.0)
MAX_FAILURES = 8  # consecutive failed connects before giving up (about a minute)


def websocket_url(base_url: str, path: str, query: Mapping[str, int | str]) -> str:
    parts = urlsplit(base_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, path, urlencode(query), ""))


class JobStream:
    """The messages of one job's socket, in order and without repeats, until it finishes.

    Iterating yields the portal's messages (`state`, `metrics`, `logs`), and ends after the
    first terminal `state`. `cursor` and `log_cursor` are where a reconnect resumes.
    """

    def __init__(self, client: Client, job: dict[str, Any]) -> None:
        self.client = client
        self.job_id = int(job["id"])
        self.path = str(job["urls"]["websocket"])
        self.cursor: tuple[int, int] = (0, -1)
        # The server's log cursor (`<attempt>.<node_rank>.<seq>,...`), and the last seq shown
        # of each node share.
        self.log_cursor: str | None = None
        self.log_seen: dict[tuple[int, int], int] = {}
        # The cursor we last reconnected from for a hole; a second hole there is accepted.
        self.hole: tuple[int, int] | None = None

    def __iter__(self) -> Iterator[dict[str, Any]]:
        failures = 0
        while True:
            query: dict[str, int | str] = {"attempt": self.cursor[0], "seq": self.cursor[1]}
            if self.log_cursor is not None:
                query["log"] = self.log_cursor
            url = websocket_url(self.client.url, self.path, query)
            try:
                with connect(
                    url,
                    origin=Origin(self.client.url),  # the portal refuses sockets without one
                    additional_headers={"Authorization": f"Bearer {self.client.token}"},
                    open_timeout=15,
                ) as socket:
                    failures = 0
                    for message in self._messages(socket):
                        yield message
                        if message["type"] == "state" and message["state"] in TERMINAL:
                            return
            except InvalidStatus as exc:
                code = exc.response.status_code
                raise CliError(
                    f"the portal refused the WebSocket with HTTP {code}"
                    + (" (is the portal's host in its ALLOWED_HOSTS?)" if code == 403 else ""),
                    ExitCode.API,
                    status=code,
                ) from exc
            except InvalidURI as exc:
                raise CliError(str(exc), ExitCode.USAGE) from exc
            except ConnectionClosed as exc:
                if exc.rcvd is not None and exc.rcvd.code in REFUSALS:
                    raise CliError(REFUSALS[exc.rcvd.code], ExitCode.API) from exc
                failures += 1
            except (OSError, TimeoutError) as exc:
                failures += 1
                if failures >= MAX_FAILURES:
                    raise CliError(
                        f"cannot reach the portal's WebSocket at {url}: {exc}",
                        ExitCode.UNREACHABLE,
                    ) from exc
            if failures:
                time.sleep(min(BACKOFF_S[1], BACKOFF_S[0] * 2 ** (failures - 1)))

    def _messages(self, socket: Any) -> Iterator[dict[str, Any]]:
        """One connection's messages; returns (to reconnect) when a metric point was lost."""
        while True:
            try:
                raw = socket.recv(timeout=QUIET_S)
            except TimeoutError:
                job = self.client.call(JOB_DETAIL, job_id=self.job_id)
                if job["state"] in TERMINAL:
                    yield {
                        "type": "state",
                        "job": self.job_id,
                        "state": job["state"],
                        "reason": job["state_reason"],
                    }
                continue
            message = json.loads(raw)
            kind = message.get("type")
            if kind == "metrics":
                points: list[dict[str, Any]] = []
                for point in message["points"]:
                    attempt, seq = point["attempt"], point["seq"]
                    if (attempt, seq) <= self.cursor:
                        continue
                    if attempt == self.cursor[0] and seq != self.cursor[1] + 1:
                        # A lost live event: the backfill after our cursor fills the hole.
                        # (A point the trainer never delivered stays a hole: accept it then.)
                        if points:
                            yield {**message, "points": points}
                        if self.hole != self.cursor:
                            self.hole = self.cursor
                            return
                    self.cursor = (attempt, seq)
                    points.append(point)
                if points:
                    yield {**message, "points": points}
            elif kind == "logs":
                # Lines are ordered by (attempt, node_rank, seq) per node share; a reconnect
                # may repeat some: keep only those past what each share already showed.
                lines = []
                for line in message["lines"]:
                    share = (line["attempt"], line["node_rank"])
                    if line["seq"] > self.log_seen.get(share, -1):
                        self.log_seen[share] = line["seq"]
                        lines.append(line)
                if message.get("cursor"):
                    self.log_cursor = message["cursor"]
                if lines:
                    yield {**message, "lines": lines}
            elif kind == "state":
                yield message
