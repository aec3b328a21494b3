"""`convolve COMMAND --help` reads as a person wants: every option explained, each real default once."""

import argparse
import re

import pytest

from convolve.cli import build_parser


def _subparsers():
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


COMMANDS = sorted(_subparsers())


def test_every_command_is_there():
    assert {"train", "evaluate", "predict", "explain", "demo", "apply"} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_has_help_and_no_placeholder_defaults(command):
    sub = _subparsers()[command]
    for action in sub._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help and action.help != argparse.SUPPRESS, f"{command}: {action.dest} has no help"
    text = sub.format_help()
    assert "(default: None)" not in text and "(default: False)" not in text
    for block in re.split(r"\n  (?=-)", text):  # one option's help per block
        assert block.count("(default:") <= 1, f"{command}: a default shown twice in {block!r}"


@pytest.mark.parametrize("command,option,default", [
    ("train", "--epochs", "5"), ("train", "--batch-size", "128"), ("train", "--optimizer", "adam"),
    ("train", "--model", "lenet"), ("evaluate", "--batch-size", "256"), ("predict", "--top", "3"),
    ("apply", "--padding", "0"), ("explain", "--dtype", "float32"),
])
def test_real_defaults_are_shown(command, option, default):
    action = next(a for a in _subparsers()[command]._actions if option in a.option_strings)
    assert f"(default: {default})" in action.help
