"""The package's layers, read from the source: functional stands below nn, and nothing private is
imported across subpackage boundaries (what is shared lives in a shared home such as ``convolve._shared``)."""

import ast
from pathlib import Path

import pytest

import convolve

ROOT = Path(convolve.__file__).parent
FILES = sorted(ROOT.rglob("*.py"))


def _module(path):
    parts = ["convolve", *path.relative_to(ROOT).with_suffix("").parts]
    return parts[:-1] if parts[-1] == "__init__" else parts


def _subpackage(parts):
    """The subpackage a module belongs to (``nn``, ``functional``, ...), or '' for top-level modules."""
    return parts[1] if len(parts) > 1 and (ROOT / parts[1]).is_dir() else ""


def _imports(path):
    """(line, absolute target module parts, imported name) of every ``from ... import`` in `path`."""
    parts = _module(path)
    package = parts if path.name == "__init__.py" else parts[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = base + (node.module.split(".") if node.module else [])
            else:
                target = node.module.split(".")
            for alias in node.names:
                yield node.lineno, target, alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split("."), None


def _private(name):
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _crossing_private(importer, target, name):
    if target[0] != "convolve":
        return False
    full = target + ([name] if name else [])
    if importer[-1] == "_cli" and "_cli" in full:  # the command line is one layer spread over subpackages
        return False
    if _subpackage(full) == _subpackage(importer) and (_subpackage(full) or len(full) <= 2):
        return False  # inside one subpackage, or top-level module to top-level name
    if len(full) > 1 and _private(full[1]):  # a shared home (_shared, _engine, _io, ...): its public names
        return any(_private(c) for c in full[2:])
    return any(_private(c) for c in full[1:])


# Known, owned elsewhere: delete the entry when it is fixed (the xfail is strict, so a fix is noticed).
KNOWN: dict = {}


def _param(path):
    name = str(path.relative_to(ROOT))
    marks = [pytest.mark.xfail(reason=KNOWN[name], strict=True)] if name in KNOWN else []
    return pytest.param(path, id=name, marks=marks)


@pytest.mark.parametrize("path", [_param(p) for p in FILES])
def test_nothing_private_is_imported_across_subpackages(path):
    importer = _module(path)
    bad = [f"line {line}: {'.'.join(t)}{' import ' + n if n else ''}"
           for line, t, n in _imports(path) if _crossing_private(importer, t, n)]
    assert not bad, f"{path.relative_to(ROOT)} imports private names of another subpackage: {bad}"


def test_functional_stands_below_nn():
    for path in (ROOT / "functional").rglob("*.py"):
        for line, target, name in _imports(path):
            full = target + ([name] if name else [])
            assert full[:2] != ["convolve", "nn"], f"{path.name}:{line} imports convolve.nn"
