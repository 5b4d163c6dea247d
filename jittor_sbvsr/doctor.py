"""``python -m jittor_sbvsr.doctor``: report the environment this package runs in and how to fix problems.

Checks Python, numpy (< 2), the I/O packages, Jittor (import, version, oneDNN, cache path), CUDA (driver,
nvcc, GPU), the correlation backend and the default weights. Each line is ``ok``, ``note`` or ``FAIL``,
with the fix for every problem; the exit status is 1 when something FAILs.
"""
import importlib
import os
import platform
import shutil
import sys
from dataclasses import dataclass

from . import runtime

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


def check_jittor():
    try:
        jt = runtime.jittor()
    except Exception as e:  # any import failure is the finding itself
        last = (str(e).strip().splitlines() or [""])[-1]
        yield Check("FAIL", "jittor", f"import failed: {type(e).__name__}: {last}",
                    f"pip install jittor=={JITTOR_VERSION} jittor-offline==0.0.7; if it mentions nvcc on a machine "
                    "without a GPU: export nvcc_path=''")
        return
    yield (Check("ok", "jittor", jt.__version__) if jt.__version__ == JITTOR_VERSION else
           Check("FAIL", "jittor", f"{jt.__version__}, this package is written for {JITTOR_VERSION}",
                 f"pip install jittor=={JITTOR_VERSION}"))
    yield (Check("ok", "oneDNN", "on") if runtime.onednn_enabled() else
           Check("note", "oneDNN", "off: CPU convolutions are several times slower",
                 "pip install jittor-offline==0.0.7 (offline oneDNN), and unset use_mkl"))
    yield from check_cuda(jt)
    yield from check_correlation()
    yield check_cache()


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


def check_cache():
    import jittor_utils

    path = jittor_utils.cache_path
    if not path.isascii():
        return Check("FAIL", "cache", f"{path} has non-ASCII characters: Jittor's compiler fails on such paths",
                     "export JITTOR_HOME=/an/ascii/only/folder (the cache goes to $JITTOR_HOME/.cache/jittor)")
    if not os.access(path, os.W_OK):
        return Check("FAIL", "cache", f"{path} is not writable", "export JITTOR_HOME=/a/writable/folder")
    return Check("ok", "cache", f"{path} (ASCII, writable)")


def check_weights():
    from .infer import DEMO_WEIGHTS, default_model_paths

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
    if all(c.status != "FAIL" for c in checks if c.name == "numpy"):
        checks += list(check_jittor())
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
