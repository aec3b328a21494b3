"""The package as a user reaches it: lazy subpackages, a light import, one version, `python -m convolve`."""

import json
import os
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
import scipy.fft

import convolve
from convolve._engine.fft import next_fast_len

SRC = str(Path(convolve.__file__).resolve().parent.parent)


def _python(code, *args):
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, *args, "-c", code], capture_output=True, text=True, env=env, check=True)


def test_import_loads_only_the_core():
    heavy = ["numba", "scipy.fft", "onnx", "dask", "torch", "matplotlib", "PIL", "tqdm",
             "convolve.nn", "convolve.explain", "convolve.training", "convolve.data"]
    out = _python(f"import sys, json, convolve; print(json.dumps([m for m in {heavy!r} if m in sys.modules]))")
    assert json.loads(out.stdout) == []


def test_subpackages_load_on_first_use():
    out = _python("import sys, convolve; a = 'convolve.nn' in sys.modules; convolve.nn.Conv2d(1, 1, 1); "
                  "print(a, 'convolve.nn' in sys.modules, convolve.optim.SGD.__name__, convolve.data.__name__, "
                  "convolve.interop.__name__, convolve.explain.__name__, convolve.training.__name__)")
    assert out.stdout.split() == ["False", "True", "SGD", "convolve.data", "convolve.interop", "convolve.explain",
                                  "convolve.training"]
    with pytest.raises(AttributeError, match="module 'convolve' has no attribute 'nothing'"):
        convolve.nothing  # noqa: B018
    assert {"nn", "optim", "data", "interop", "explain", "training"} <= set(dir(convolve))


def test_one_version_from_the_installed_metadata():
    try:
        expected = version("convolve")
    except PackageNotFoundError:
        expected = "0+unknown"
    assert convolve.__version__ == expected
    out = _python("import sys; from convolve.cli import main; sys.argv = ['convolve', '--version']; main()")
    assert out.stdout.strip() == f"convolve {expected}"


def test_python_dash_m_convolve_runs_the_cli():
    env = {**os.environ, "PYTHONPATH": SRC}
    res = subprocess.run([sys.executable, "-m", "convolve", "--help"], capture_output=True, text=True, env=env)
    assert res.returncode == 0
    assert "usage: convolve" in res.stdout and "train" in res.stdout and "explain" in res.stdout


def test_the_package_says_it_is_typed():
    assert (Path(convolve.__file__).parent / "py.typed").is_file()


def test_fft_sizes_equal_scipys_without_importing_it():
    assert [next_fast_len(n) for n in range(1, 3000)] == [scipy.fft.next_fast_len(n, real=True) for n in range(1, 3000)]
    for n in (7919, 104729, 2**20 + 1, 3**13 + 2, 10**9 + 7):
        assert next_fast_len(n) == scipy.fft.next_fast_len(n, real=True)
