"""What the tools need beyond the installed package: the PyTorch reference, and children on the same package.

The tools import ``jittor_sbvsr`` as installed (``pip install -e .``) and each other as scripts of this folder
(Python puts a script's folder first on ``sys.path``). Two things need more:

* ``reference()``: the PyTorch implementation of ``tests/reference``, which the benchmarks compare against. It
  is test support, never installed, so it is imported from this checkout's ``tests/`` folder: this is the one
  place where a tool adds to ``sys.path``. It imports torch, which must come before Jittor (tests/conftest.py).
* ``child_env()``: the environment of a child process that must run the same ``jittor_sbvsr`` as this one,
  also when that is a checkout put first on ``sys.path`` (as the tests do) rather than the installed copy.
"""
import os
import sys

TESTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests")


def reference():
    """The module ``tests/reference/torch_sbvsr`` (imports torch)."""
    if TESTS not in sys.path:
        sys.path.insert(0, TESTS)
    from reference import torch_sbvsr

    return torch_sbvsr


def child_env(**extra):
    """``os.environ`` with the folder holding this process's ``jittor_sbvsr`` first on PYTHONPATH, and ``extra``."""
    import jittor_sbvsr

    root = os.path.dirname(os.path.dirname(os.path.abspath(jittor_sbvsr.__file__)))
    path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    return dict(os.environ, PYTHONPATH=path, **extra)
