"""The `qatgrid` command. Subcommands import what they need, so `qatgrid status` stays torch-free."""

from __future__ import annotations

import sys

USAGE = "usage: qatgrid status [--configfile FILE ...] [--results DIR] [--json]"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    if argv[0] == "status":
        from .status import main as status_main

        return status_main(argv[1:])
    print(f"qatgrid: unknown command {argv[0]!r}\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
