"""The `convolve` command line: one parser, sub-commands contributed by the modules that own them."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Optional, Sequence

from . import _version

# each module provides add_commands(subparsers); a sub-parser sets `func(args) -> exit code`
_COMMAND_MODULES = ("convolve.explain._cli", "convolve.training._cli", "convolve.onnx._cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="convolve",
        description="Convolutional networks in pure NumPy: see, train and run them.",
    )
    parser.add_argument("--version", action="version", version=f"convolve {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(name).add_commands(sub)
    return parser


def positive_int(text: str) -> int:
    """An argparse type: a positive int written in digits."""
    if text.isdigit() and int(text) > 0:
        return int(text)
    raise argparse.ArgumentTypeError(f"expected a positive int, but got {text!r}")


def add_max_pixels(parser: argparse.ArgumentParser) -> None:
    """``--max-pixels N``: the image size guard against decompression bombs, the same in every
    sub-command that reads image files."""
    parser.add_argument("--max-pixels", type=positive_int, default=None, metavar="N",
                        help="refuse larger images before decoding them (default: 89478485, Pillow's limit)")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code = int(args.func(args) or 0)
    except (ValueError, TypeError) as exc:  # user errors: one clear line, no traceback
        return _fail(args.command, exc, 2)
    except FileNotFoundError as exc:  # a missing input is a user error too
        return _fail(args.command, describe_os_error(exc), 2)
    except OSError as exc:  # the system refused a read or write: permission, disk full, read-only, ...
        _silence_stdout()
        return _fail(args.command, describe_os_error(exc), 1)
    except MemoryError:
        return _fail(args.command, "out of memory", 1)
    try:
        sys.stdout.flush()  # a full disk or closed pipe on stdout is reported here, not at exit
    except OSError as exc:
        _silence_stdout()
        return _fail(args.command, f"cannot write to standard output: {describe_os_error(exc)}", 1)
    return code


def _fail(command, message, code) -> int:
    print(f"convolve {command}: error: {message}", file=sys.stderr)
    return code


def describe_os_error(exc: OSError) -> str:
    """One line for an OSError: its message and the file it names, without ``[Errno N]``."""
    text = exc.strerror or str(exc) or type(exc).__name__
    for name in (exc.filename, exc.filename2):
        if name is not None and str(name) not in text:
            text += f": {str(name)!r}"
    return text


def _silence_stdout():
    """If stdout is what failed, point it at /dev/null so the exit flush cannot fail a second time."""
    try:
        sys.stdout.flush()
    except OSError:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):  # stdout replaced by an object without a descriptor
            pass


if __name__ == "__main__":
    sys.exit(main())
