"""``python -m lookalike.service serve|keys ...``: the service commands on their own (the same
ones ``lookalike serve`` / ``lookalike keys`` run)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .cli import add_service_commands


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lookalike.service")
    add_service_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (FileNotFoundError, ValueError) as exc:
        print(f"lookalike: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
