"""Jittor reimplementation of Self-Blind-VSR (Bai & Pan, TPAMI 2024).

Importing the package, or any module of it, sets nothing up: Jittor is imported, configured for this machine,
by ``runtime.jittor()`` where a module needs it, and each command chooses the device with ``runtime.init()``.
"""
__version__ = "0.1.0"


def report():
    """One-line runtime report (Jittor version, device, oneDNN, correlation backend, inference conv layout) of
    the device as it stands: ``runtime.init()`` chooses it."""
    from . import runtime

    return runtime.report()
