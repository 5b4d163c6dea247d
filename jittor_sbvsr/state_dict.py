"""Comparing a state dict with the keys and shapes a model expects, and loading it strictly (Jittor's own
``load_state_dict`` never raises; this one always does on a mismatch).

Importing this module imports no Jittor (``load_state_dict_strict`` gets it when called), so ``weights`` and
the converter use ``compare_keys`` without it.
"""
from dataclasses import dataclass, field

import numpy as np

from .runtime import jittor


class StateDictMismatch(ValueError):
    """Missing, unexpected or mis-shaped keys; the message lists them."""


@dataclass
class KeyReport:
    """Result of comparing a state dict with the expected keys and shapes."""
    kind: str
    expected: int
    matched: list = field(default_factory=list)
    missing: list = field(default_factory=list)
    unexpected: list = field(default_factory=list)
    mismatched: list = field(default_factory=list)  # (key, file shape, expected shape)

    def ok(self, allow_missing=False):
        return not self.unexpected and not self.mismatched and (allow_missing or not self.missing)

    def summary(self, limit=3):
        """One line, e.g. '2 missing (in_conv.0.weight, ...), 1 mis-shaped (a: [3] vs [4])'."""
        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing ({_first(self.missing, limit)})")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected ({_first(self.unexpected, limit)})")
        if self.mismatched:
            items = [f"{k}: {list(a)} vs {list(b)} expected" for k, a, b in self.mismatched]
            parts.append(f"{len(self.mismatched)} mis-shaped ({_first(items, limit)})")
        return ", ".join(parts) if parts else f"all {self.expected} keys match"


def _first(items, limit):
    shown = ", ".join(items[:limit])
    return shown + (f", ... {len(items) - limit} more" if len(items) > limit else "")


def compare_keys(state, expected, kind):
    """KeyReport of ``state`` (key -> array) against ``expected`` (key -> shape); ``kind`` names what was
    expected in the report."""
    rep = KeyReport(kind=kind, expected=len(expected))
    for key, shape in expected.items():
        if key not in state:
            rep.missing.append(key)
        elif tuple(state[key].shape) != tuple(shape):
            rep.mismatched.append((key, tuple(state[key].shape), tuple(shape)))
        else:
            rep.matched.append(key)
    rep.unexpected = [k for k in state if k not in expected]
    return rep


def expected_shapes(module):
    """{key: shape} of every parameter of ``module``, in registration order."""
    return {key: tuple(var.shape) for key, var in module.state_dict().items()}


def load_state_dict_strict(module, state):
    """Copy every array of ``state`` into ``module`` (cast to the parameter dtype), or raise
    StateDictMismatch listing the missing, unexpected and mis-shaped keys; nothing is copied then."""
    jt = jittor()
    params = module.state_dict()
    report = compare_keys(state, expected_shapes(module), type(module).__name__)
    if not report.ok():
        raise StateDictMismatch(report.summary(limit=10))
    for key, var in params.items():
        var.update(jt.array(np.ascontiguousarray(np.asarray(state[key], dtype=str(var.dtype)))))
    # materialise now: a pending one-element array op (e.g. the bias of a 1-channel conv) fused into a
    # broadcast makes Jittor 1.3.11 generate C++ that does not compile
    jt.sync(list(params.values()))
