"""The ProcessSupervisor with real child processes: process groups, shutdown, and crash handling."""

from __future__ import annotations

import io
import json
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import IO

import psutil
import pytest

from portal.devservers import free_port
from portal.ops.processes import ProcessSpec
from portal.ops.supervisor import ProcessExited, ProcessSupervisor

PY = sys.executable


def py(name: str, code: str) -> ProcessSpec:
    return ProcessSpec(name, (PY, "-c", textwrap.dedent(code)), {"PYTHONUNBUFFERED": "1"})


SLEEPER = "import time; time.sleep(600)"
# Starts a grandchild, which stays in the child's process group, and prints its pid:
# stopping the child's group must take the grandchild too.
FAMILY = """
import subprocess, sys, time
grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print("grandchild", grandchild.pid)
time.sleep(600)
"""


def gone(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def wait_for_line(stream: IO[str], needle: str, timeout: float = 30.0) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if needle in line:
            return lines
    raise AssertionError(f"never saw {needle!r}; got:\n" + "\n".join(lines))


def test_sigterm_stops_every_process_and_its_children_and_leaves_no_orphans():
    script = textwrap.dedent(
        f"""
        import sys
        from portal.ops.processes import ProcessSpec
        from portal.ops.supervisor import ProcessSupervisor
        specs = [
            ProcessSpec("sleeper", (sys.executable, "-c", {SLEEPER!r})),
            ProcessSpec("family", (sys.executable, "-u", "-c", {FAMILY!r})),
        ]
        sys.exit(ProcessSupervisor(specs, stop_timeout=5).run())
        """
    )
    with subprocess.Popen([PY, "-c", script], stdout=subprocess.PIPE, text=True) as supervisor:
        assert supervisor.stdout is not None
        try:
            lines = wait_for_line(supervisor.stdout, "family     | grandchild")
        finally:
            supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(timeout=30) == 0

    started = {
        line.split("started ")[1].split(" ")[0]: int(line.split("(pid ")[1].split(")")[0])
        for line in lines
        if "| started " in line
    }
    grandchild = int(next(line for line in lines if "| grandchild" in line).split()[-1])
    assert set(started) == {"sleeper", "family"}
    for pid in [*started.values(), grandchild]:
        assert gone(pid), f"pid {pid} outlived the supervisor"


# Like the node agent, which starts each training launcher in a session of its own.
ESCAPER = """
import subprocess, sys, time
launcher = subprocess.Popen(
    [sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True
)
print("launcher", launcher.pid)
time.sleep(600)
"""


def test_stopping_also_stops_descendants_that_left_for_a_session_of_their_own(tmp_path: Path):
    with ProcessSupervisor([py("agent", ESCAPER)], log_dir=tmp_path, stop_timeout=5) as supervisor:
        deadline = time.monotonic() + 30
        while "launcher" not in supervisor.tail("agent") and time.monotonic() < deadline:
            time.sleep(0.05)
        launcher = int(supervisor.tail("agent").split()[-1])
        assert psutil.Process(launcher).status() != psutil.STATUS_ZOMBIE
    assert gone(launcher), "a descendant in its own session outlived the supervisor"


def test_a_crash_stops_the_others_restarts_nothing_and_exits_non_zero():
    out = io.StringIO()
    sup = ProcessSupervisor(
        [py("steady", SLEEPER), py("crasher", "import sys, time; time.sleep(0.5); sys.exit(3)")],
        out=out,
    )
    status = sup.run()
    steady = sup.pid("steady")

    assert status == 3
    assert "crasher exited with status 3; stopping everything" in out.getvalue()
    assert gone(steady)
    assert out.getvalue().count("started crasher") == 1


def test_output_is_prefixed_with_the_process_name_line_by_line():
    out = io.StringIO()
    sup = ProcessSupervisor(
        [py("talker", "print('one'); print('two', flush=True); raise SystemExit(0)")],
        out=out,
        colour=False,
    )
    status = sup.run()

    lines = out.getvalue().splitlines()
    assert "talker     | one" in lines
    assert "talker     | two" in lines
    # Exiting at all is unexpected for a supervised process, even with status 0.
    assert status == 1


def test_a_process_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path: Path):
    stubborn = py(
        "stubborn",
        """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ready", flush=True)
        time.sleep(600)
        """,
    )
    with ProcessSupervisor([stubborn], log_dir=tmp_path, stop_timeout=1, out=io.StringIO()) as sup:
        deadline = time.monotonic() + 20
        while "ready" not in sup.log_path("stubborn").read_text():
            assert time.monotonic() < deadline, sup.tail("stubborn")
            time.sleep(0.05)
        pid = sup.pid("stubborn")
        stopping = time.monotonic()
    took = time.monotonic() - stopping

    assert gone(pid)
    assert 1.0 <= took < 8.0


def test_wait_for_http_returns_once_the_server_answers(tmp_path: Path):
    port = free_port()
    server = ProcessSpec("http", (PY, "-m", "http.server", "--bind", "127.0.0.1", str(port)), {})
    with ProcessSupervisor([server], log_dir=tmp_path, out=io.StringIO()) as sup:
        sup.wait_for_http(f"http://127.0.0.1:{port}/", timeout=30)
        sup.check()
        assert sup.log_path("http").exists()


def test_wait_for_http_fails_fast_when_a_process_dies(tmp_path: Path):
    port = free_port()
    with (
        ProcessSupervisor(
            [py("dies", "print('bye'); raise SystemExit(4)")], log_dir=tmp_path, out=io.StringIO()
        ) as sup,
        pytest.raises(ProcessExited) as raised,
    ):
        sup.wait_for_http(f"http://127.0.0.1:{port}/", timeout=30)
    assert raised.value.name == "dies"
    assert raised.value.returncode == 4
    assert "bye" in sup.tail("dies")


def test_a_supervisor_that_cannot_start_a_process_stops_those_it_started():
    out = io.StringIO()
    sup = ProcessSupervisor(
        [py("first", SLEEPER), ProcessSpec("missing", ("/nonexistent/program",))], out=out
    )
    with pytest.raises(FileNotFoundError):
        sup.start()
    assert gone(sup.pid("first"))


def test_process_names_must_be_unique():
    with pytest.raises(ValueError, match="unique"):
        ProcessSupervisor([py("a", SLEEPER), py("a", SLEEPER)])


def test_json_is_not_mangled_by_the_prefix():
    # Each line stays whole after the prefix, so logs stay machine-readable.
    out = io.StringIO()
    payload = {"loss": 0.5, "text": "a | b"}
    ProcessSupervisor(
        [py("j", f"import json; print(json.dumps({payload!r}))")], out=out, colour=False
    ).run()
    line = next(x for x in out.getvalue().splitlines() if x.startswith("j "))
    assert json.loads(line.split(" | ", 1)[1]) == payload


def test_a_reader_that_goes_away_does_not_spoil_a_clean_shutdown():
    # A terminal's Ctrl-C also kills `| tee`: the supervisor must still stop everything.
    script = textwrap.dedent(
        """
        import sys
        from portal.ops.processes import ProcessSpec
        from portal.ops.supervisor import ProcessSupervisor
        specs = [ProcessSpec("chatty", (sys.executable, "-u", "-c",
            "import time\\nwhile True:\\n    print('tick', flush=True)\\n    time.sleep(0.01)"))]
        sys.exit(ProcessSupervisor(specs, stop_timeout=5).run())
        """
    )
    with subprocess.Popen(
        [PY, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as supervisor:
        assert supervisor.stdout is not None and supervisor.stderr is not None
        try:
            lines = wait_for_line(supervisor.stdout, "chatty     | tick")
            supervisor.stdout.close()
            time.sleep(0.3)
        finally:
            supervisor.send_signal(signal.SIGTERM)
        returncode = supervisor.wait(timeout=30)
        errors = supervisor.stderr.read()
    started = re.search(r"started chatty \(pid (\d+)\)", "\n".join(lines))
    assert started is not None
    chatty = int(started[1])
    assert returncode == 0, errors
    assert "Traceback" not in errors
    assert "BrokenPipeError" not in errors
    assert gone(chatty)
