"""``python -m jittor_sbvsr.doctor``: report the environment this package runs in and how to fix problems.

Checks Python, numpy (< 2), the I/O packages, Jittor's cache folder (before importing Jittor, since the import
compiles into it), Jittor (import, version, oneDNN), CUDA (driver, nvcc, GPU), the correlation backend and the
default weights. Each line is ``ok``, ``note`` or ``FAIL``, with the fix for every problem; the exit status is 1
when something FAILs.
"""
import importlib
import json
import os
import platform
import shutil
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import runtime
from .default_weights import DEMO_WEIGHTS, default_model_paths
from .errors import InputError

JITTOR_VERSION = "1.3.11.0"


@dataclass
class Check:
    status: str  # "ok", "note" or "FAIL"
    name: str
    detail: str
    fix: str = ""


def _module_version(name):
    module = importlib.import_module(name)
    return getattr(module, "__version__", "installed")


def check_packages():
    yield Check("ok", "python", f"{platform.python_version()} ({sys.executable})")
    import numpy

    major = int(numpy.__version__.split(".")[0])
    yield (Check("ok", "numpy", numpy.__version__) if major < 2 else
           Check("FAIL", "numpy", f"{numpy.__version__}: Jittor 1.3.11 returns wrong values with numpy 2",
                 "pip install 'numpy<2'"))
    for name, pip_name, use in (("PIL", "pillow", "reading and writing frames"), ("tqdm", "tqdm", "progress bars"),
                                ("skimage", "scikit-image", "the --demo photo"),
                                ("imageio_ffmpeg", "imageio-ffmpeg", "video files")):
        try:
            version = _module_version(name)
        except ImportError as e:
            yield Check("FAIL", pip_name, f"not importable ({e}); needed for {use}", f"pip install {pip_name}")
            continue
        if name == "imageio_ffmpeg":
            try:
                exe = importlib.import_module(name).get_ffmpeg_exe()
            except RuntimeError as e:
                yield Check("FAIL", "ffmpeg", str(e), "pip install --force-reinstall imageio-ffmpeg")
                continue
            version = f"{version}, ffmpeg {exe}"
        yield Check("ok", pip_name, version)


def check_jittor(cache_ok=True):
    """Import Jittor and report it; ``cache_ok`` False (``check_cache`` found a problem) makes that problem
    the fix for a failed import, since a cache folder Jittor cannot write stops the import itself."""
    try:
        runtime.check_settings()
    except InputError as e:
        yield Check("FAIL", "settings", str(e), "unset that variable or give it one of the values named")
        return
    try:
        jt = runtime.init()
    except Exception as e:  # any import failure is the finding itself
        last = (str(e).strip().splitlines() or [""])[-1]
        fix = ("fix the cache problem reported above first" if not cache_ok else
               f"pip install jittor=={JITTOR_VERSION} jittor-offline==0.0.7; if it mentions nvcc on a machine "
               "without a GPU: export nvcc_path=''")
        yield Check("FAIL", "jittor", f"import failed: {type(e).__name__}: {last}", fix)
        return
    yield (Check("ok", "jittor", jt.__version__) if jt.__version__ == JITTOR_VERSION else
           Check("FAIL", "jittor", f"{jt.__version__}, this package is written for {JITTOR_VERSION}",
                 f"pip install jittor=={JITTOR_VERSION}"))
    yield (Check("ok", "oneDNN", "on") if runtime.onednn_enabled() else
           Check("note", "oneDNN", "off: CPU convolutions are several times slower",
                 "pip install jittor-offline==0.0.7 (offline oneDNN), and unset use_mkl"))
    yield from check_cuda(jt)
    yield from check_correlation()
    conv = check_conv_operator()
    yield conv
    if conv.status != "FAIL":  # a oneDNN asked for but unusable: the conv-oneDNN line says why
        yield check_bf16(jt)


def check_conv_operator():
    """Which oneDNN the channels-last convolutions run on (``cuda_ops.onednn_library``) and which kernel it picks
    for fp32 here; a note when the faster oneDNN 3 wheel is missing on a machine it is made for."""
    from cuda_ops import conv_onednn, onednn_library

    try:
        in_use = onednn_library.describe("fp32") if conv_onednn.available() else None
    except (RuntimeError, ValueError) as e:
        return Check("FAIL", "conv-oneDNN", str(e), f"unset {onednn_library.ENV_VAR}, or reinstall this package")
    if in_use is None:
        return Check("note", "conv-oneDNN", "not in use (CUDA, or no oneDNN): CPU convolutions run on Jittor's own")
    if not in_use.startswith("wheel") and onednn_library.wheel_expected():
        return Check("note", "conv-oneDNN", f"{in_use}: oneDNN 3 is faster (AMX bf16, better fp32 kernels)",
                     onednn_library.INSTALL_WHEELS)
    return Check("ok", "conv-oneDNN", in_use)


def check_bf16(jt):
    """Whether ``infer --precision bf16`` can run here and, measured, whether it is faster than fp32: CPUs and
    oneDNN versions differ (2x on an AMD EPYC, 0.6x on an Intel Xeon with Jittor's oneDNN 2.2, 3.5x there with
    oneDNN 3's AMX kernels)."""
    from cuda_ops import conv_onednn, onednn_library

    support = conv_onednn.bf16_support()
    if support == "none":
        return Check("note", "bf16", "--precision bf16 cannot run on this CPU (no AVX-512)",
                     "keep the default --precision fp32")
    if not conv_onednn.available():
        return Check("note", "bf16", "--precision bf16 runs only on the CPU through oneDNN, which this run does "
                                     "not use (CUDA, or no oneDNN)")
    speed = bf16_speed(jt, conv_onednn)
    kernel = onednn_library.describe("bf16").split("; ")[-1]
    detail = f"--precision bf16 runs at {speed:.2f}x the speed of fp32 here ({kernel})"
    if speed < BF16_WORTH:
        return Check("note", "bf16", detail, "keep the default --precision fp32")
    return Check("ok", "bf16", detail)


BF16_WORTH = 1.1  # speed ratio below which doctor advises keeping fp32


def bf16_speed(jt, conv_onednn, repeats=5):
    """fp32 time / bf16 time (medians of ``repeats``, after a warm-up) of one 3x3 convolution of the trunk's
    shape (128 -> 128 channels) at 64x64 through ``conv_onednn``: above 1, bf16 is faster here."""
    import numpy as np

    rng = np.random.default_rng(0)
    x = jt.array(rng.random((1, 64, 64, 128), dtype=np.float32))
    weight = jt.array(rng.standard_normal((128, 128, 3, 3)).astype(np.float32) * 0.03)
    medians = {}
    with jt.no_grad():
        for precision in ("fp32", "bf16"):
            times = []
            for _ in range(repeats + 1):
                started = time.perf_counter()
                conv_onednn.conv2d(x, weight, None, 1, 1, 1, precision).sync()
                times.append(time.perf_counter() - started)
            medians[precision] = statistics.median(times[1:])
    return medians["fp32"] / medians["bf16"]


def check_cuda(jt):
    driver = runtime.cuda_driver_present()
    nvcc = os.environ.get("nvcc_path") or shutil.which("nvcc") or ""
    if not driver:
        yield Check("ok", "CUDA", "no NVIDIA driver visible: running on the CPU")
        return
    if not jt.has_cuda:
        yield Check("FAIL", "CUDA", f"an NVIDIA driver is present but Jittor has no CUDA (nvcc: {nvcc or 'not found'})",
                    "install the CUDA toolkit so that nvcc is on PATH (or export nvcc_path=/path/to/nvcc); "
                    "--cpu runs on the CPU meanwhile")
        return
    yield Check("ok", "CUDA", f"{runtime.device_name()}, nvcc {nvcc}" + (
        "" if jt.flags.use_cuda else " (switched off: SBVSR_CPU=1 or use_cuda=0 in the environment)"))


def check_correlation():
    import cuda_ops

    try:
        backend = cuda_ops.correlation_backend()
    except (RuntimeError, ValueError) as e:
        yield Check("FAIL", "correlation", str(e), "unset SBVSR_CORRELATION (or set it to auto)")
        return
    yield (Check("ok", "correlation", backend) if backend != "vectorized" else
           Check("note", "correlation", "vectorized fallback (slower; the custom operator did not compile or "
                                        "was not chosen)", "check that g++ works, then unset SBVSR_CORRELATION"))


def jittor_config_file():
    """Jittor's user-wide settings file, ~/.cache/jittor/config.json (it only ever records JITTOR_HOME)."""
    return os.path.join(str(Path.home()), ".cache", "jittor", "config.json")


def jittor_home():
    """The folder Jittor will put its cache under (``<home>/.cache/jittor``), found as ``jittor_utils.home()``
    finds it but without importing Jittor or writing anything: $JITTOR_HOME, else the JITTOR_HOME recorded in
    ``jittor_config_file()``, else the user's home folder. ValueError when that file is not valid JSON."""
    recorded = None
    if os.path.isfile(jittor_config_file()):
        with open(jittor_config_file(), encoding="utf-8") as f:
            data = json.load(f)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        recorded = data.get("JITTOR_HOME")
    return os.environ.get("JITTOR_HOME") or recorded or str(Path.home())


def jittor_home_fix(what):
    """The JITTOR_HOME advice, with the side effect Jittor gives that variable and how to undo it."""
    return (f"export JITTOR_HOME={what} (the cache then goes to $JITTOR_HOME/.cache/jittor). Jittor records "
            f"that folder in {jittor_config_file()} as the default for every later run, with or without the "
            "variable; to undo, delete the JITTOR_HOME entry from that file")


def _nearest_existing(path):
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path


def _can_create(folder):
    """True when ``folder`` exists as a writable folder or can be made (its nearest existing ancestor is a
    writable folder)."""
    existing = _nearest_existing(os.path.abspath(folder))
    return os.path.isdir(existing) and os.access(existing, os.W_OK | os.X_OK)


def check_cache():
    """Jittor's cache folder, checked before Jittor is imported (the import compiles into it). Flags only what
    is known to break Jittor: a folder it cannot create or write, a double quote in its path (Jittor puts
    paths in double quotes in its compiler commands) and, on Windows, non-ASCII characters (paths are
    converted to the ANSI code page there). Non-ASCII paths work on Linux."""
    config_dir = os.path.dirname(jittor_config_file())
    if not (os.path.isdir(config_dir) or _can_create(config_dir)):  # Jittor's import makes it if missing
        return Check("FAIL", "cache", f"{config_dir} cannot be created: Jittor keeps its settings there and "
                                      "fails to import without it",
                     f"create it as a user allowed to (mkdir -p {config_dir}), or run with HOME set to a "
                     "writable folder")
    try:
        home = jittor_home()
    except ValueError as e:
        return Check("FAIL", "cache", f"{jittor_config_file()} is not valid JSON ({e}): Jittor fails to import",
                     f"delete {jittor_config_file()} (it only records JITTOR_HOME)")
    path = os.path.join(home, ".cache", "jittor")
    if not _can_create(path):
        return Check("FAIL", "cache", f"{path} cannot be created or written: Jittor compiles into it",
                     jittor_home_fix("/a/writable/folder"))
    if '"' in path:
        return Check("FAIL", "cache", f"{path} contains a double quote, which breaks Jittor's compiler commands",
                     jittor_home_fix("/a/folder/without/quotes"))
    if sys.platform == "win32" and not path.isascii():
        return Check("FAIL", "cache", f"{path} has non-ASCII characters, which Jittor's compiler commands lose "
                                      "on Windows", jittor_home_fix("C:\\an\\ascii\\folder"))
    return Check("ok", "cache", f"{path} (writable)")


def check_weights():
    paths = default_model_paths()
    found = [p for p in paths if os.path.isfile(p)]
    if found:
        return Check("ok", "weights", f"{os.path.abspath(found[0])} (upstream)")
    fix = ("for upstream's results put self_blind_vsr_gaussian.pt there (it loads directly) or convert it: "
           f"python tools/convert_weights.py {paths[1]} {paths[0]}")
    if os.path.isfile(DEMO_WEIGHTS):
        return Check("note", "weights", f"no upstream weights at {' or '.join(paths)} (relative to {os.getcwd()}): "
                                        f"infer uses the shipped demo weights {DEMO_WEIGHTS}", fix)
    return Check("note", "weights", f"none at {' or '.join(paths)} (relative to {os.getcwd()}) nor {DEMO_WEIGHTS}: "
                                    "--demo runs an untrained network", fix)


def main():
    checks = list(check_packages())
    cache = check_cache()
    checks.append(cache)
    if all(c.status != "FAIL" for c in checks if c.name == "numpy"):
        checks += list(check_jittor(cache_ok=cache.status != "FAIL"))
    checks.append(check_weights())
    width = max(len(c.name) for c in checks)
    for c in checks:
        print(f"{c.status:4}  {c.name:{width}}  {c.detail}")
        if c.fix:
            print(f"{'':4}  {'':{width}}  fix: {c.fix}")
    failed = [c.name for c in checks if c.status == "FAIL"]
    print(f"{len(failed)} problem(s): {', '.join(failed)}" if failed else "no problems found")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
