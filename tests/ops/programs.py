"""What a command line runs, reduced to the part that must exist in this project."""

from __future__ import annotations

import importlib
import importlib.util
import shlex
from collections.abc import Sequence

from django.core.management import get_commands


def split_shell(argv: Sequence[str]) -> list[list[str]]:
    """`sh -c "a && b"` is two commands; anything else is one."""
    if len(argv) == 3 and argv[0] in {"sh", "bash"} and argv[1] == "-c":
        return [shlex.split(part) for part in argv[2].split("&&")]
    return [list(argv)]


def identity(argv: Sequence[str]) -> tuple[str, ...]:
    """The program a command runs, independent of how it is spelled.

    `python -m celery -A portal worker -Q control ...` and `celery -A portal worker -Q control`
    are both ("celery", "portal", "worker", "control").
    """
    args = list(argv)
    if args and (args[0] == "python" or args[0].endswith(("/python", "/python3", "python3.11"))):
        args = args[1:]
        if args[:1] == ["-m"]:
            args = args[1:]
    if not args:
        raise AssertionError(f"no program in {list(argv)}")
    program = args[0]
    if program == "daphne":
        return ("daphne", next(arg for arg in args if ":" in arg and not arg.startswith("-")))
    if program == "celery":
        app = args[args.index("-A") + 1]
        sub = next(arg for arg in args[args.index("-A") + 2 :] if not arg.startswith("-"))
        queue = args[args.index("-Q") + 1] if "-Q" in args else ""
        return ("celery", app, sub, queue)
    if program.endswith("manage.py"):
        return ("manage.py", args[1])
    return (program,)


def assert_runs_something_real(argv: Sequence[str]) -> None:
    """Fail unless the module, app or management command that `argv` names exists."""
    kind, *rest = identity(argv)
    if kind == "daphne":
        module_name, attribute = rest[0].split(":")
        module = importlib.import_module(module_name)
        assert hasattr(module, attribute), f"{module_name} has no {attribute}"
    elif kind == "celery":
        app_module = importlib.import_module(rest[0])
        assert hasattr(app_module, "celery_app") or hasattr(app_module, "app"), (
            f"{rest[0]} defines no Celery app"
        )
        assert rest[1] in {"worker", "beat"}, f"unexpected celery subcommand {rest[1]}"
    elif kind == "manage.py":
        assert rest[0] in get_commands(), f"manage.py has no {rest[0]!r} command"
    else:
        assert importlib.util.find_spec(kind) is not None, f"no module {kind!r} to run with -m"
