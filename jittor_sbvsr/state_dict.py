"""Strict state-dict loading: Jittor's ``load_state_dict`` never raises, this one always does on mismatch."""
import numpy as np

from .runtime import jittor


class StateDictMismatch(ValueError):
    """Missing, unexpected or mis-shaped keys; the message lists them."""


def expected_shapes(module):
    """{key: shape} of every parameter of ``module``, in registration order."""
    return {key: tuple(var.shape) for key, var in module.state_dict().items()}


def check_state_dict(expected, state):
    """Problems between expected {key: shape} and a state {key: array}: one string each."""
    problems = [f"missing key {k}" for k in expected if k not in state]
    problems += [f"unexpected key {k}" for k in state if k not in expected]
    problems += [f"{k}: shape {tuple(np.shape(state[k]))}, model expects {shape}"
                 for k, shape in expected.items() if k in state and tuple(np.shape(state[k])) != shape]
    return problems


def load_state_dict_strict(module, state):
    """Copy every array of ``state`` into ``module`` (cast to the parameter dtype), or raise
    StateDictMismatch listing every missing, unexpected and mis-shaped key; nothing is copied then."""
    jt = jittor()
    params = module.state_dict()
    problems = check_state_dict({k: tuple(v.shape) for k, v in params.items()}, state)
    if problems:
        shown = "; ".join(problems[:10]) + (f"; ... ({len(problems)} problems)" if len(problems) > 10 else "")
        raise StateDictMismatch(shown)
    for key, var in params.items():
        var.update(jt.array(np.ascontiguousarray(np.asarray(state[key], dtype=str(var.dtype)))))
    # materialise now: a pending one-element array op (e.g. the bias of a 1-channel conv) fused into a
    # broadcast makes Jittor 1.3.11 generate C++ that does not compile
    jt.sync(list(params.values()))
