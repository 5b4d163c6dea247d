"""Custom operators for jittor-sbvsr: the PWC-Net 81-channel correlation.

``correlation(first, second)`` is the one entry point the model uses; ``correlation_backend()`` names the
implementation in use. Backends:

* ``cuda``: the jt.code operator's CUDA kernels (Jittor on CUDA, ``jt.flags.use_cuda``);
* ``cpp``: the same operator's C++/OpenMP kernels (Jittor on CPU);
* ``vectorized``: plain Jittor operators, no compiler needed, slower.

``SBVSR_CORRELATION=auto|cuda|cpp|vectorized`` picks one (default ``auto``). ``auto`` takes the custom operator
for the current device after a one-time self-check and falls back to ``vectorized``, with one warning naming
the cause, when that operator cannot be compiled or gives wrong results. A forced ``cuda``/``cpp`` never falls
back: it fails when it does not match the device, and its compile errors are raised as they are.

This package never imports Jittor itself: it runs on the Jittor the program imported (``host.loaded_jittor``).
Importing ``cuda_ops`` imports no Jittor; ``cuda_ops.correlation_op``, which defines a ``jt.Function``, needs it
imported first.
"""
import os
import re
import warnings

from .correlation_vectorized import correlation as _vectorized
from .host import loaded_jittor

ENV_VAR = "SBVSR_CORRELATION"
CHOICES = ("auto", "cuda", "cpp", "vectorized")

_chosen = {}  # (requested backend, running on CUDA) -> (backend name, function)


def correlation(first, second):
    """81-channel correlation of two [B, C, H, W] feature maps -> [B, 81, H, W] (upstream-conventions §1)."""
    return _select()[1](first, second)


def correlation_backend():
    """Name of the correlation backend used on the current device: 'cuda', 'cpp' or 'vectorized'."""
    return _select()[0]


def requested_backend():
    """The backend asked for through SBVSR_CORRELATION (default 'auto'); ValueError for unknown values."""
    value = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    if value not in CHOICES:
        raise ValueError(f"{ENV_VAR}={os.environ[ENV_VAR]!r} is not a correlation backend; "
                         f"use one of {', '.join(CHOICES)}")
    return value


def _select():
    """(name, function) for the requested backend on the current device, decided once per combination."""
    key = (requested_backend(), bool(loaded_jittor().flags.use_cuda))
    if key not in _chosen:
        _chosen[key] = _resolve(*key)
    return _chosen[key]


def _resolve(requested, on_cuda):
    """Apply the rules of the module docstring; the self-check compiles the custom operator once."""
    native = "cuda" if on_cuda else "cpp"
    if requested == "vectorized":
        return "vectorized", _vectorized
    if requested != "auto":
        if requested != native:
            raise RuntimeError(f"{ENV_VAR}={requested} but Jittor runs on {'CUDA' if on_cuda else 'the CPU'}; "
                               f"use {native}, vectorized or auto")
        from .correlation_op import correlation as custom
        return native, custom
    try:
        from . import correlation_op as custom_op

        custom_op.check()
    except Exception as exc:  # any compile/run failure means: use the portable version
        warnings.warn(f"correlation: the {native} custom operator is unavailable ({_summary(exc)}); "
                      f"falling back to the slower vectorized Jittor version", RuntimeWarning, stacklevel=4)
        return "vectorized", _vectorized
    return native, custom_op.correlation


def _summary(exc):
    """One line saying why: the first error line of a (possibly long, coloured) Jittor exception."""
    lines = [line.strip() for line in re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).splitlines() if line.strip()]
    line = next((line for line in lines if "rror" in line or "failed" in line), lines[0] if lines else "")
    return f"{type(exc).__name__}: {line[:300]}"
