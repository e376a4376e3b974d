"""`python -m workers node|launcher ...`: the node plane's commands under one name."""

from __future__ import annotations

import sys


def main() -> int:
    commands = ("node", "launcher")
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.stderr.write(f"usage: python -m workers {{{','.join(commands)}}} [options]\n")
        return 2
    command, rest = sys.argv[1], sys.argv[2:]
    if command == "node":
        from workers.node import main as node_main

        return node_main(rest)
    from workers.launcher import main as launcher_main

    return launcher_main(rest)


if __name__ == "__main__":
    sys.exit(main())
