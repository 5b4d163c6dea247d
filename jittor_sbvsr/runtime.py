"""Jittor runtime set-up: configure Jittor *before* it is imported, then report what it runs on.

Jittor reads its configuration from environment variables at import time. On a machine with an
``nvcc`` but no CUDA driver it fails to import, and on a fresh CPU machine it tries to download oneDNN.
``configure()`` fixes both without touching any variable the user already set:

* no CUDA driver visible  -> ``nvcc_path=""`` (CPU only);
* oneDNN comes from the ``jittor-offline`` package (an install requirement): Jittor's own downloader
  copies the tarball from it instead of going to the network;
* CUDA-side downloads that no offline package carries are switched off (``use_cutlass=0``);
* Jittor's info/warning log lines are silenced unless ``SBVSR_JITTOR_LOG=1`` (errors still raise).

``jittor()`` also keeps Ctrl-C and SIGTERM from ending the process without clean-up: Jittor's C++ SIGINT
handler is replaced by Python's after the import (``interrupts.restore_sigint``), and the pool of compiler
processes that the import starts is kept out of the signals sent to the run (``_detach_compile_pool``).
"""
import ctypes.util
import glob
import os
import signal

from .interrupts import restore_sigint

_CONFIGURED = False
_SET_UP = False  # the first jittor() call has imported and set up Jittor
# lower-case pieces of the messages Jittor, CUDA and oneDNN raise when an allocation fails
OOM_MARKERS = ("out of memory", "cudaerrormemoryallocation", "cuda_error_out_of_memory", "bad_alloc",
               "cannot allocate memory", "could not create a memory object")


def check_numpy(version):
    """Refuse numpy >= 2: Jittor 1.3.11 silently returns wrong values with it."""
    if int(version.split(".")[0]) >= 2:
        raise ImportError(f"jittor_sbvsr needs numpy<2 (found numpy {version}): Jittor 1.3.11 computes "
                          "wrong values silently under numpy 2. Fix: pip install 'numpy<2'")


def cuda_driver_present():
    """True when an NVIDIA driver is visible: a device node and a loadable libcuda."""
    has_device = bool(glob.glob("/dev/nvidia[0-9]*")) or os.path.exists("/dev/nvidiactl")
    return has_device and ctypes.util.find_library("cuda") is not None


def configure():
    """Set Jittor's environment defaults for this machine (idempotent; user values win)."""
    global _CONFIGURED
    if _CONFIGURED:
        return
    import numpy

    check_numpy(numpy.__version__)
    _CONFIGURED = True
    if not cuda_driver_present():
        os.environ.setdefault("nvcc_path", "")
    else:
        os.environ.setdefault("use_cutlass", "0")
    if os.environ.get("SBVSR_JITTOR_LOG", "0") != "1":
        os.environ.setdefault("log_silent", "1")


def _detach_compile_pool():
    """Start the processes of Jittor's compiler pool in a session of their own, with default signal handling.

    The import forks the pool and leaves it idle for the whole run. Signals sent to the run's process group
    (Ctrl-C in a terminal, ``kill -- -PGID``, ``timeout``) would otherwise kill them too, and multiprocessing
    would fork replacements from a background thread of a process that is busy cleaning up: such forks can
    hang, and they inherit every file open at that moment (an ffmpeg input pipe they hold never ends). Nor may
    the handlers a command installs before importing Jittor (``interrupts.sigterm_raises``) run in them:
    Jittor ends the pool at exit with SIGTERM. When the run dies without cleaning up (SIGKILL), the pool's
    processes see their task queue close and exit. Must run before ``import jittor``, which creates the pool
    with this initializer."""
    import jittor_utils

    original = jittor_utils.pool_initializer

    def initializer():
        os.setsid()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_DFL)
        original()

    jittor_utils.pool_initializer = initializer


def jittor():
    """Import and return Jittor, configured; the first call restores Python's Ctrl-C handling and switches
    CUDA on when it is available (later calls leave the device alone, so ``use_cpu()`` sticks)."""
    global _SET_UP
    configure()
    if not _SET_UP:
        _detach_compile_pool()
    import jittor as jt

    if not _SET_UP:
        _SET_UP = True
        restore_sigint()
        if jt.has_cuda and os.environ.get("SBVSR_CPU", "0") != "1" and "use_cuda" not in os.environ:
            jt.flags.use_cuda = 1
    return jt


def is_out_of_memory(err):
    """True when ``err`` (a RuntimeError from Jittor, or a MemoryError) reports a failed allocation."""
    return isinstance(err, MemoryError) or any(marker in str(err).lower() for marker in OOM_MARKERS)


def use_cpu():
    """Force CPU execution from now on (``--cpu``)."""
    jt = jittor()
    jt.flags.use_cuda = 0


def onednn_enabled():
    """True when Jittor's oneDNN (mkl) operators were built and are in use."""
    jittor()
    from jittor import compile_extern

    return bool(compile_extern.use_mkl and compile_extern.mkl_ops is not None)


def device_name():
    """'cpu' or 'cuda (<GPU name>)'."""
    jt = jittor()
    if not jt.flags.use_cuda:
        return "cpu"
    name = _gpu_name()
    return f"cuda ({name})" if name else "cuda"


def _gpu_name():
    """Name of GPU 0 through the CUDA driver API, or '' when it cannot be read."""
    lib = ctypes.util.find_library("cuda")
    if lib is None:
        return ""
    cuda = ctypes.CDLL(lib)
    if cuda.cuInit(0) != 0:
        return ""
    device = ctypes.c_int()
    if cuda.cuDeviceGet(ctypes.byref(device), 0) != 0:
        return ""
    buf = ctypes.create_string_buffer(256)
    if cuda.cuDeviceGetName(buf, 256, device) != 0:
        return ""
    return buf.value.decode(errors="replace")


def report():
    """One line: Jittor version, device, oneDNN state, correlation backend and inference conv layout."""
    jt = jittor()
    import cuda_ops
    from .models import channels_last

    return (f"jittor {jt.__version__} | device {device_name()} | "
            f"oneDNN {'on' if onednn_enabled() else 'off'} | correlation {cuda_ops.correlation_backend()} | "
            f"inference convs {channels_last.inference_layout()}")
