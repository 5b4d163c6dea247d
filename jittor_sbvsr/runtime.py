"""Jittor for this package: import it configured for this machine, then choose the device once per command.

Importing a module of this package changes nothing outside it (no environment variable, no Jittor flag), so
that a program embedding it, or a command that only parses its arguments, is left as it was. Two functions
hold everything else:

``jittor()`` imports Jittor (every module that needs it gets it here) and returns it. Jittor reads its
configuration from environment variables when it is imported, so for the import only, and without touching a
variable the user set, it sets:

* ``nvcc_path=""`` when no NVIDIA driver is visible (CPU only; with ``nvcc`` on PATH but no driver the
  import fails otherwise);
* ``use_cutlass=0`` when there is a driver: a CUDA-side download that no offline package carries;
* ``log_silent=1`` unless ``SBVSR_JITTOR_LOG=1``: Jittor's info and warning lines (errors still raise).

Afterwards ``os.environ`` is put back exactly as it was, including the ``cc_path`` and ``cache_name`` that the
import sets itself: Jittor keeps what it read in its flags and module globals (compiler paths, log level,
cache folder), and its JIT compiler reads no variable of ours later. oneDNN comes from the ``jittor-offline``
package (an install requirement), which Jittor's own downloader copies from instead of going to the network.
The first call also keeps Ctrl-C and SIGTERM from ending the process without clean-up: Jittor's C++ SIGINT
handler is replaced by Python's after the import (``interrupts.restore_sigint``), and the pool of compiler
processes that the import starts is kept out of the signals sent to the run (``_detach_compile_pool``).
``jittor()`` never changes the device: Jittor starts on the CPU (or as its own ``use_cuda`` variable says).

``init(device)`` is called once by each command (and by ``api.VideoSR``): it imports Jittor and chooses the
device; see its docstring for the rule.
"""
import contextlib
import ctypes.util
import glob
import importlib
import os
import signal

import cuda_ops
from cuda_ops import onednn_library

from .errors import InputError
from .interrupts import restore_sigint

DEVICES = ("auto", "cpu", "cuda")
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


def jittor_environment():
    """The variables Jittor's import should see on this machine that the user has not set: name -> value."""
    wanted = {"nvcc_path": ""} if not cuda_driver_present() else {"use_cutlass": "0"}
    if os.environ.get("SBVSR_JITTOR_LOG", "0") != "1":
        wanted["log_silent"] = "1"
    return {name: value for name, value in wanted.items() if name not in os.environ}


@contextlib.contextmanager
def _environment(extra):
    """``os.environ`` with ``extra`` added inside the block, and exactly as before it afterwards (whatever
    the block set or removed)."""
    saved = dict(os.environ)
    os.environ.update(extra)
    try:
        yield
    finally:
        for name in set(os.environ) - set(saved):
            del os.environ[name]
        for name, value in saved.items():
            if os.environ.get(name) != value:
                os.environ[name] = value


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


def _import_configured():
    """The first import of Jittor: numpy checked, environment set for the import only, then the clean-up
    hooks of the module docstring."""
    import numpy

    check_numpy(numpy.__version__)
    with _environment(jittor_environment()):
        _detach_compile_pool()  # imports jittor_utils, which reads the log variables
        importlib.import_module("jittor")
    restore_sigint()


def jittor():
    """Import and return Jittor, configured for this machine (module docstring); the device is left alone."""
    global _SET_UP
    if not _SET_UP:
        _import_configured()
        _SET_UP = True
    import jittor as jt

    return jt


def init(device="auto"):
    """Choose the device of this process and return Jittor; each command calls it once, before its work.

    ``"auto"``: CUDA when Jittor has it and an NVIDIA driver is visible, unless ``SBVSR_CPU=1`` or the user
    set Jittor's own ``use_cuda`` variable (which then stands). ``"cpu"``: the CPU (``--cpu``). ``"cuda"``:
    CUDA, RuntimeError when Jittor has none. Jittor's device is global to the process."""
    if device not in DEVICES:
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda' (got {device!r})")
    check_settings()
    jt = jittor()
    if device == "cuda" and not jt.has_cuda:
        raise RuntimeError("device='cuda' but Jittor has no CUDA here (python -m jittor_sbvsr.doctor)")
    if device == "auto":
        if "use_cuda" in os.environ:
            return jt
        cuda = jt.has_cuda and cuda_driver_present() and os.environ.get("SBVSR_CPU", "0") != "1"
    else:
        cuda = device == "cuda"
    jt.flags.use_cuda = int(cuda)
    return jt


def check_settings():
    """This package's own environment variables (``SBVSR_CORRELATION``, ``SBVSR_ONEDNN``), checked before any
    work: an InputError ("environment: ...", one line) names a bad value, so a command fails at once."""
    for read in (cuda_ops.requested_backend, onednn_library.requested):
        try:
            read()
        except ValueError as err:
            raise InputError("environment", str(err)) from None


def is_out_of_memory(err):
    """True when ``err`` (a RuntimeError from Jittor, or a MemoryError) reports a failed allocation."""
    return isinstance(err, MemoryError) or any(marker in str(err).lower() for marker in OOM_MARKERS)


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


def inference_layout():
    """The layout inference convolutions run in on the current device: 'NHWC' on the CPU (channels-last,
    ``models.channels_last``: oneDNN computes in NHWC), 'NCHW' on CUDA (the layout cuDNN is used with)."""
    return "NCHW" if jittor().flags.use_cuda else "NHWC"


def report():
    """One line: Jittor version, device, oneDNN state, correlation backend, inference conv layout and, on the CPU,
    the oneDNN the channels-last convolutions run on (``cuda_ops.onednn_library``)."""
    jt = jittor()
    from cuda_ops import conv_onednn

    line = (f"jittor {jt.__version__} | device {device_name()} | "
            f"oneDNN {'on' if onednn_enabled() else 'off'} | correlation {cuda_ops.correlation_backend()} | "
            f"inference convs {inference_layout()}")
    if conv_onednn.available():
        line += f" ({onednn_library.describe('fp32').split(';')[0]})"
    return line
