"""Sub-commands of this package (being built)."""


def add_commands(subparsers):
    return None
