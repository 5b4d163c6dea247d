"""Shared test set-up: torch is imported before Jittor (their MKL/oneDNN runtimes can clash otherwise), then
the package imports Jittor and chooses the device as a command does (CUDA when available)."""
import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402,F401  (must precede Jittor)

from jittor_sbvsr import runtime  # noqa: E402

jt = runtime.init()



def load_tool(name):
    """The script ``tools/<name>.py`` imported as a module, as Python runs it: with tools/ first on ``sys.path``
    while it loads, since the scripts import each other by name (``from support import child_env``)."""
    import importlib.util

    tools = os.path.join(ROOT, "tools")
    spec = importlib.util.spec_from_file_location(name, os.path.join(tools, name + ".py"))
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, tools)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(tools)
    return module


def tsv_shapes():
    """Ordered [(key, shape)] of the upstream checkpoint (the spec's state_dict_keys.tsv, shipped in the
    package)."""
    from jittor_sbvsr.weights import reference_shapes

    return list(reference_shapes("full").items())


@pytest.fixture
def rng():
    return np.random.default_rng(0)
