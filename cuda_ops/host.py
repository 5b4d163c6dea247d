"""What cuda_ops takes from the program that uses it: the Jittor that program imported.

Importing Jittor needs set-up that belongs to the program (which CUDA toolkit, offline oneDNN, logging;
``jittor_sbvsr.runtime.jittor()`` does it), so cuda_ops never imports Jittor itself.
"""
import sys


def loaded_jittor():
    """The Jittor module the running program has imported; RuntimeError when it has not imported it yet."""
    jt = sys.modules.get("jittor")
    if jt is None:
        raise RuntimeError("cuda_ops runs on the Jittor the program imported, and Jittor is not imported yet "
                           "(jittor_sbvsr.runtime.jittor() imports it)")
    return jt
