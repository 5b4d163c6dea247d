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



def tsv_shapes():
    """Ordered [(key, shape)] of the upstream checkpoint (the spec's state_dict_keys.tsv, shipped in the
    package)."""
    from jittor_sbvsr.weights import reference_shapes

    return list(reference_shapes("full").items())


@pytest.fixture
def rng():
    return np.random.default_rng(0)
