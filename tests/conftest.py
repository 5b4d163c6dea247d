"""Shared test set-up: torch is imported before Jittor (their MKL/oneDNN runtimes can clash otherwise,
JITTOR_NOTES §1), then the package configures and imports Jittor."""
import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402,F401  (must precede Jittor)

import jittor_sbvsr  # noqa: E402

jt = jittor_sbvsr.runtime.jittor()

TSV = os.path.join(ROOT, "tests", "data", "state_dict_keys.tsv")


def tsv_shapes():
    """Ordered [(key, shape)] of the upstream checkpoint (spec state_dict_keys.tsv)."""
    rows = []
    with open(TSV) as f:
        for line in f.read().splitlines():
            key, shape = line.split("\t")
            rows.append((key, tuple(int(s) for s in shape.strip("[]").split(","))))
    return rows


@pytest.fixture
def rng():
    return np.random.default_rng(0)
