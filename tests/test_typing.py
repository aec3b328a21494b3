"""The package is typed: mypy (the [tool.mypy] settings in pyproject.toml) finds no error, and every
public function and method carries annotations (``py.typed`` tells type checkers to read them)."""

import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import convolve

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = REPO / "pyproject.toml"
SOURCE = REPO / "src" / "convolve"  # the checked-out code (the tests may run against an installed copy)


@pytest.mark.skipif(not (PYPROJECT.is_file() and SOURCE.is_dir()),
                    reason="needs the source tree: mypy's settings are in its pyproject.toml")
def test_mypy_is_clean_on_the_package():
    api = pytest.importorskip("mypy.api", reason="mypy is part of the [test] extra")
    out, err, status = api.run(["--config-file", str(PYPROJECT), str(SOURCE)])
    assert status == 0, out + err


def _public_modules():
    for info in pkgutil.walk_packages(convolve.__path__, "convolve."):
        parts = info.name.split(".")[1:]
        if not any(p.startswith("_") for p in parts):
            yield info.name


def _public_callables():
    seen = set()
    for name in ["convolve", *_public_modules()]:
        module = importlib.import_module(name)
        for attr in getattr(module, "__all__", []):
            obj = getattr(module, attr, None)
            if inspect.isfunction(obj):
                found = [(f"{obj.__module__}.{obj.__qualname__}", obj)]
            elif inspect.isclass(obj) and obj.__module__.startswith("convolve"):
                found = [(f"{obj.__module__}.{obj.__qualname__}.{k}", v) for k, v in vars(obj).items()
                         if inspect.isfunction(v) and (not k.startswith("_") or k in ("__init__", "__call__"))]
            else:
                found = []
            for qualname, f in found:
                if qualname not in seen:
                    seen.add(qualname)
                    yield qualname, f


def test_every_public_function_and_method_is_annotated():
    missing = []
    for qualname, f in _public_callables():
        sig = inspect.signature(f)
        params = [p for p in sig.parameters.values() if p.name not in ("self", "cls")
                  and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        bare = [p.name for p in params if p.annotation is inspect.Parameter.empty]
        if sig.return_annotation is inspect.Signature.empty:
            bare.append("return")
        if bare:
            missing.append(f"{qualname}: {', '.join(bare)}")
    assert not missing, "not annotated:\n" + "\n".join(missing)
