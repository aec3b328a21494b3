"""Docs that run: the examples in every docstring of the package are executed, as doctests.

The modules are imported by name, so the examples run against the convolve that the tests use
(installed or editable). Not collected:
- ``convolve.__main__``: importing it runs the command line;
- the modules of an optional extra (``convolve[onnx]``, ``convolve[dask]``) when that extra is not
  installed: their examples need it.
"""

import doctest
import importlib
import importlib.util
import pkgutil

import numpy as np
import pytest

import convolve

_EXTRAS = {"convolve.onnx": "onnx", "convolve.dask": "dask"}


def _skipped(name):
    if name == "convolve.__main__":
        return True
    return any(name == pkg or name.startswith(pkg + ".") for pkg, extra in _EXTRAS.items()
               if importlib.util.find_spec(extra) is None)


def _doctests(name):
    return [t for t in doctest.DocTestFinder().find(importlib.import_module(name), name) if t.examples]


MODULES = ["convolve"] + sorted(
    info.name for info in pkgutil.walk_packages(convolve.__path__, "convolve.") if not _skipped(info.name)
)
WITH_EXAMPLES = [name for name in MODULES if _doctests(name)]


@pytest.mark.parametrize("name", [
    "convolve", "convolve.autograd", "convolve.functional.conv", "convolve.functional.pool",
    "convolve.functional.activation", "convolve.functional.loss", "convolve.functional.fold",
    "convolve.functional.adaptive", "convolve.functional.pad", "convolve.nn.module", "convolve.nn.conv",
    "convolve.nn.pooling", "convolve.nn.linear", "convolve.nn.container", "convolve.nn.batchnorm",
    "convolve.nn.dropout", "convolve.optim.sgd", "convolve.optim.adam", "convolve.optim.lr_scheduler",
    "convolve.interop", "convolve.data._loader", "convolve.explain", "convolve.explain.summarize", "convolve.explain.spec",
])
def test_the_public_api_has_examples(name):
    assert name in WITH_EXAMPLES


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # an example that writes a file writes it here
    tests = _doctests(name)
    report = []
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    state = np.random.get_state()
    try:
        for test in tests:
            runner.run(test, out=report.append)
    finally:
        np.random.set_state(state)
    assert runner.failures == 0, "".join(report)
