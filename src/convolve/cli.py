"""The `convolve` command line: one parser, sub-commands contributed by the modules that own them."""

from __future__ import annotations

import argparse
import importlib
import sys

# each module provides add_commands(subparsers); a sub-parser sets `func(args) -> exit code`
_COMMAND_MODULES = ("convolve.explain._cli", "convolve.training._cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="convolve",
        description="Convolutional networks in pure NumPy: see, train and run them.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(name).add_commands(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, FileNotFoundError) as exc:  # user errors: one clear line, no traceback
        print(f"convolve {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
