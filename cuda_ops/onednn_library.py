"""The oneDNN behind ``conv_onednn``: which one, and ``conv_onednn.cc`` built against it as a shared library.

Two can be present on a CPU machine:

* ``wheel``: oneDNN 3 from the ``onednn-cpu-gomp`` and ``onednn-devel-cpu-gomp`` wheels (installed with this
  package on x86-64 Linux). Its bf16 convolutions use AMX tiles on CPUs that have them (measured 5-7x its fp32
  speed), and its fp32 kernels are faster than version 2's (docs/cpu-performance.md).
* ``jittor``: oneDNN 2.2, which Jittor downloads into its cache and builds its own convolutions on.

``SBVSR_ONEDNN=auto|wheel|jittor`` picks one; ``auto`` (the default) takes the wheel when it is installed and
Jittor's otherwise, and ``describe()`` names the one in use (``doctor`` and the ``device:`` line print it). A
forced choice that is not installed is an error, never a silent switch.

Both export the same C function names with different ABIs, and Jittor has loaded version 2 into the process
for every program, so the built library is loaded with ``RTLD_DEEPBIND``: its oneDNN calls reach the oneDNN it
was built against. It is built once per machine with Jittor's C++ compiler into Jittor's cache folder (a few
seconds), under a name that hashes its source, oneDNN and compiler, so an update rebuilds it.
"""
import ctypes
import glob
import hashlib
import os
import platform
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from .host import loaded_jittor

ENV_VAR = "SBVSR_ONEDNN"
CHOICES = ("auto", "wheel", "jittor")
WHEELS = ("onednn-cpu-gomp", "onednn-devel-cpu-gomp")  # the library, its headers
WHEEL_VERSION = "2023.2.0"  # oneDNN 3.2, the last GNU-OpenMP build (setup.py pins the same)
INSTALL_WHEELS = "pip install " + " ".join(f"{wheel}=={WHEEL_VERSION}" for wheel in WHEELS)
SOURCE = Path(__file__).resolve().parent / "conv_onednn.cc"
_LOAD_MODE = os.RTLD_NOW | os.RTLD_LOCAL | getattr(os, "RTLD_DEEPBIND", 0)


class OneDNN:
    """One oneDNN installation: where its headers and its shared library are."""

    def __init__(self, name, include, library):
        self.name, self.include, self.library = name, include, library


def wheel_expected():
    """Whether setup.py installs the oneDNN 3 wheels here: they exist for x86-64 Linux only."""
    return platform.system() == "Linux" and platform.machine() == "x86_64"


def requested():
    """The oneDNN asked for through SBVSR_ONEDNN (default 'auto'); ValueError for unknown values."""
    value = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    if value not in CHOICES:
        raise ValueError(f"{ENV_VAR}={os.environ[ENV_VAR]!r} is not a oneDNN choice; use one of {', '.join(CHOICES)}")
    return value


@lru_cache(maxsize=None)
def installed():
    """{name: OneDNN} of the oneDNNs present ('wheel', 'jittor'), looked up once per process."""
    found = {}
    wheel = _wheel()
    if wheel is not None:
        found["wheel"] = wheel
    jittor = _jittors()
    if jittor is not None:
        found["jittor"] = jittor
    return found


def selected():
    """The OneDNN that SBVSR_ONEDNN selects, or None when none is present (``auto`` only)."""
    choice, present = requested(), installed()
    if choice == "auto":
        return present.get("wheel") or present.get("jittor")
    if choice not in present:
        raise RuntimeError(f"{ENV_VAR}={choice}, but that oneDNN is not installed"
                           + (f" ({INSTALL_WHEELS})" if choice == "wheel" else " (Jittor downloads it when its oneDNN support is on)"))
    return present[choice]


def library_path():
    """Path of conv_onednn.cc built against the selected oneDNN (built now if needed); None without oneDNN."""
    onednn = selected()
    return None if onednn is None else _built(onednn.name, onednn.include, onednn.library)


def load():
    """The built library, loaded (``RTLD_DEEPBIND``); None without oneDNN."""
    path = library_path()
    return None if path is None else _loaded(path)


def describe(precision="fp32"):
    """'<choice>: oneDNN <version>; <kernel>' for a trunk-sized convolution in ``precision`` ('fp32' or 'bf16'),
    e.g. 'wheel: oneDNN 3.2.0; brgconv:avx512_core_amx'; None without oneDNN."""
    lib = load()
    if lib is None:
        return None
    text = ctypes.create_string_buffer(512)
    if lib.sbvsr_describe(int(precision == "bf16"), text, len(text)) != 0:
        raise RuntimeError(f"oneDNN could not build a {precision} convolution: {text.value.decode(errors='replace')}")
    return f"{selected().name}: {text.value.decode(errors='replace')}"


def _wheel():
    """oneDNN 3 from the wheels, or None when either of them is missing."""
    try:
        library, header = _wheel_file(WHEELS[0], "libdnnl.so.3"), _wheel_file(WHEELS[1], "dnnl.hpp")
    except metadata.PackageNotFoundError:
        return None
    return None if header is None or library is None else OneDNN("wheel", str(header.parent), str(library))


def _wheel_file(dist, name):
    """Absolute path of the file ``name`` that the installed distribution ``dist`` holds, or None."""
    for entry in metadata.distribution(dist).files or ():
        if entry.name == name:
            path = Path(entry.locate()).resolve()
            return path if path.is_file() else None
    return None


def _jittors():
    """The oneDNN 2 that Jittor installed (``<Jittor home>/.cache/jittor/mkl/dnnl*``), or None."""
    import jittor_utils

    found = sorted(glob.glob(os.path.join(jittor_utils.home(), ".cache", "jittor", "mkl", "dnnl*", "include")))
    if not found:
        return None
    library = os.path.join(os.path.dirname(found[0]), "lib", "libmkldnn.so")
    return OneDNN("jittor", found[0], library) if os.path.isfile(library) else None


@lru_cache(maxsize=None)
def _built(name, include, library):
    """Build (once per source, oneDNN and compiler) and return the library's path."""
    import jittor_utils

    compiler = loaded_jittor().flags.cc_path or "g++"
    source = SOURCE.read_bytes()
    key = hashlib.sha256(b"\0".join([source, include.encode(), library.encode(), compiler.encode()])).hexdigest()
    folder = os.path.join(jittor_utils.cache_path, "sbvsr_onednn")
    path = os.path.join(folder, f"conv_{name}_{key[:16]}.so")
    if os.path.isfile(path):
        return path
    os.makedirs(folder, exist_ok=True)
    temporary = f"{path}.{os.getpid()}.tmp"
    command = [compiler, "-O2", "-std=c++14", "-shared", "-fPIC", str(SOURCE), "-I", include, library,
               f"-Wl,-rpath,{os.path.dirname(library)}", "-o", temporary]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        if os.path.exists(temporary):
            os.remove(temporary)
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        raise RuntimeError(f"building {SOURCE.name} against {name}'s oneDNN ({include}) failed: {tail}")
    os.replace(temporary, path)  # atomic: a concurrent build of the same key writes the same file
    return path


@lru_cache(maxsize=None)
def _loaded(path):
    lib = ctypes.CDLL(path, mode=_LOAD_MODE)
    lib.sbvsr_describe.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int)
    return lib
