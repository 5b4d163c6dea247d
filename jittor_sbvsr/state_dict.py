"""Strict state-dict loading: Jittor's ``load_state_dict`` never raises, this one always does on mismatch."""
import numpy as np

from .runtime import jittor
from .weights import check_state


class StateDictMismatch(ValueError):
    """Missing, unexpected or mis-shaped keys; the message lists them."""


def expected_shapes(module):
    """{key: shape} of every parameter of ``module``, in registration order."""
    return {key: tuple(var.shape) for key, var in module.state_dict().items()}


def load_state_dict_strict(module, state):
    """Copy every array of ``state`` into ``module`` (cast to the parameter dtype), or raise
    StateDictMismatch listing the missing, unexpected and mis-shaped keys; nothing is copied then."""
    jt = jittor()
    params = module.state_dict()
    report = check_state(state, type(module).__name__, expected={k: tuple(v.shape) for k, v in params.items()})
    if not report.ok():
        raise StateDictMismatch(report.summary(limit=10))
    for key, var in params.items():
        var.update(jt.array(np.ascontiguousarray(np.asarray(state[key], dtype=str(var.dtype)))))
    # materialise now: a pending one-element array op (e.g. the bias of a 1-channel conv) fused into a
    # broadcast makes Jittor 1.3.11 generate C++ that does not compile
    jt.sync(list(params.values()))
