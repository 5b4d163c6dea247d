"""Jittor reimplementation of Self-Blind-VSR (Bai & Pan, TPAMI 2024).

Importing the package configures Jittor for this machine (offline oneDNN, CPU/CUDA detection, quiet
logging) before Jittor itself is imported; see ``jittor_sbvsr.runtime``.
"""
from . import runtime

runtime.configure()

__version__ = "0.1.0"


def report():
    """One-line runtime report (Jittor version, device, oneDNN, correlation backend, inference conv layout)."""
    return runtime.report()
