"""Correlation layer (upstream-conventions §1): custom operator vs vectorised fallback vs a float64 numpy loop.

Runs on whatever device Jittor uses (CPU here; ``tools/gpu_check.sh`` runs it on CUDA), comparing the custom
operator of that device with the vectorised version.
"""
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from jittor_sbvsr.runtime import jittor as _load_jittor

import cuda_ops
from cuda_ops import correlation_op
from cuda_ops.correlation_op import correlation as custom
from cuda_ops.correlation_vectorized import correlation as vectorized

jt = _load_jittor()
REPO = Path(__file__).resolve().parents[1]
LEVEL_CHANNELS = [196, 128, 96, 64, 32]  # PWC-Net feature channels at levels 6..2
SIZES = [(1, 1), (3, 5), (7, 13)]


def loop_reference(first, second):
    """The formula, literally, in float64 (independent of both implementations)."""
    b, c, h, w = first.shape
    out = np.zeros((b, 81, h, w))
    for dy in range(-4, 5):
        for dx in range(-4, 5):
            k = (dy + 4) * 9 + dx + 4
            for y in range(max(0, -dy), min(h, h - dy)):
                for x in range(max(0, -dx), min(w, w - dx)):
                    out[:, k, y, x] = (first[:, :, y, x] * second[:, :, y + dy, x + dx]).sum(1) / c
    return out


def random_maps(shape, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(dtype) for _ in range(2)]


def with_grads(impl, first, second, weight):
    """impl's output and the gradients of sum(output * weight) for both inputs, as numpy arrays."""
    a, b = jt.array(first), jt.array(second)
    out = impl(a, b)
    d_first, d_second = jt.grad((out * jt.array(weight)).sum(), [a, b])
    return out.numpy(), d_first.numpy(), d_second.numpy()


def run_python(code, **env):
    """Run code in a fresh interpreter from the repository root with extra environment variables."""
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    full_env = {**os.environ, "PYTHONPATH": path, **env}
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=full_env, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.parametrize("channels", LEVEL_CHANNELS)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_custom_matches_vectorized(channels, size):
    shape = [2, channels, *size]
    first, second = random_maps(shape)
    weight = random_maps([2, 81, *size], seed=1)[0]
    got = with_grads(custom, first, second, weight)
    want = with_grads(vectorized, first, second, weight)
    for name, g, v, tol in zip(("forward", "d_first", "d_second"), got, want, (1e-6, 1e-5, 1e-5)):
        assert np.abs(g - v).max() <= tol, name


@pytest.mark.parametrize("impl", [custom, vectorized], ids=["custom", "vectorized"])
def test_matches_float64_loop_reference(impl):
    first, second = random_maps([2, 5, 7, 13], np.float64)
    want = loop_reference(first, second)
    assert np.abs(impl(jt.array(first), jt.array(second)).numpy() - want).max() <= 1e-6


@pytest.fixture
def float64():
    """Keep float64 arrays float64 (Jittor converts them to float32 by default)."""
    previous = jt.flags.auto_convert_64_to_32
    jt.flags.auto_convert_64_to_32 = 0
    yield
    jt.flags.auto_convert_64_to_32 = previous


def test_float64_forward_and_finite_difference_gradients(float64):
    shape = [1, 3, 4, 6]
    first, second = random_maps(shape, np.float64, seed=2)
    weight = random_maps([1, 81, 4, 6], np.float64, seed=3)[0]
    out, d_first, d_second = with_grads(custom, first, second, weight)
    assert out.dtype == np.float64
    assert np.abs(out - loop_reference(first, second)).max() <= 1e-12

    def loss(f, s):
        return (loop_reference(f, s) * weight).sum()

    eps, rng = 1e-6, np.random.default_rng(4)
    for arg, grad in ((0, d_first), (1, d_second)):
        for index in [tuple(rng.integers(0, n) for n in shape) for _ in range(12)]:
            plus, minus = [first.copy(), second.copy()], [first.copy(), second.copy()]
            plus[arg][index] += eps
            minus[arg][index] -= eps
            numeric = (loss(*plus) - loss(*minus)) / (2 * eps)
            assert abs(numeric - grad[index]) <= 1e-7, (arg, index)


def test_shifted_copy_peaks_at_channel_51():
    """second[y + 1, x + 2] = first[y, x]: the match is at dy = +1, dx = +2 -> channel (1+4)*9 + (2+4) = 51."""
    first = np.random.default_rng(5).standard_normal([1, 64, 12, 14]).astype(np.float32)
    second = np.zeros_like(first)
    second[:, :, 1:, 2:] = first[:, :, :-1, :-2]
    corr = custom(jt.array(first), jt.array(second)).numpy()
    assert (corr[0, :, 1:-5, 2:-6].argmax(axis=0) == 51).all()


def test_entry_point_uses_native_backend():
    expected = "cuda" if jt.flags.use_cuda else "cpp"
    if os.environ.get(cuda_ops.ENV_VAR, "auto") == "auto":
        assert cuda_ops.correlation_backend() == expected


needs_cuda = pytest.mark.skipif(not jt.has_cuda, reason="Jittor has no CUDA on this machine")


def device_env(device):
    """Environment for a subprocess on 'cpu' or 'gpu' (the runtime switches CUDA on when it is available)."""
    return {"SBVSR_CPU": "1"} if device == "cpu" else {}


def case(device, *values):
    marks = [needs_cuda] if device == "gpu" else []
    return pytest.param(device, *values, marks=marks, id=f"{device}-{values[0]}")


@pytest.mark.parametrize("device,value,backend", [
    case("cpu", "auto", "cpp"), case("cpu", "cpp", "cpp"), case("cpu", "vectorized", "vectorized"),
    case("cpu", "VECTORIZED", "vectorized"), case("gpu", "auto", "cuda"), case("gpu", "cuda", "cuda"),
    case("gpu", "vectorized", "vectorized")])
def test_environment_variable_forces_backend(device, value, backend):
    result = run_python("import numpy as np, cuda_ops\n"
                        "from jittor_sbvsr.runtime import init; jt = init()\n"
                        "x = jt.array(np.ones([1, 2, 3, 3], 'float32'))\n"
                        "print(list(cuda_ops.correlation(x, x).shape), cuda_ops.correlation_backend())",
                        SBVSR_CORRELATION=value, **device_env(device))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == f"[1, 81, 3, 3] {backend}"


@pytest.mark.parametrize("device,value,message", [
    case("cpu", "fast", "is not a correlation backend"), case("cpu", "cuda", "runs on the CPU"),
    case("gpu", "cpp", "runs on CUDA")])
def test_bad_environment_variable_fails_clearly(device, value, message):
    result = run_python("from jittor_sbvsr import runtime; runtime.init()\nimport cuda_ops\n"
                        "print(cuda_ops.correlation_backend())",
                        SBVSR_CORRELATION=value, **device_env(device))
    assert result.returncode != 0
    assert message in result.stderr and "SBVSR_CORRELATION" in result.stderr


def test_compile_failure_falls_back_with_one_warning(monkeypatch):
    native, source = ("cuda", "cuda_src") if jt.flags.use_cuda else ("cpp", "cpu_src")
    monkeypatch.setenv(cuda_ops.ENV_VAR, "auto")
    monkeypatch.setattr(cuda_ops, "_chosen", {})
    monkeypatch.setitem(correlation_op.FORWARD, source, "this is not C++;")
    x = jt.array(np.ones([1, 2, 3, 3], np.float32))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            assert cuda_ops.correlation(x, x).shape == [1, 81, 3, 3]
        assert cuda_ops.correlation_backend() == "vectorized"
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1 and "falling back" in messages[0] and native in messages[0], messages


@pytest.mark.parametrize("device,backend", [case("cpu", "cpp"), case("gpu", "cuda")])
def test_compiles_in_non_ascii_cache_folder(device, backend, tmp_path):
    """A user whose home (hence Jittor cache) and TMPDIR are named in Chinese characters, under LC_ALL=C.

    Only the custom operator's compilation is moved (jt.flags.cache_path: Jittor writes jit sources, objects
    and libraries there), so the ~3-minute compile of Jittor's core is not repeated.
    """
    folder = tmp_path / "用户缓存"
    for sub in ("jit", "obj_files", "tmp"):
        (folder / sub).mkdir(parents=True)
    code = ("import numpy as np, cuda_ops\n"
            "from jittor_sbvsr.runtime import init; jt = init()\n"
            f"jt.flags.cache_path = {str(folder)!r}\n"
            "x = jt.array(np.arange(18, dtype='float32').reshape(1, 2, 3, 3))\n"
            "out = cuda_ops.correlation(x, x)\n"
            "print(cuda_ops.correlation_backend(), float(out[0, 40].sum()))")
    result = run_python(code, TMPDIR=str(folder / "tmp"), LC_ALL="C", SBVSR_CORRELATION=backend,
                        **device_env(device))
    assert result.returncode == 0, result.stderr
    expected = (np.arange(18.0) ** 2).sum() / 2  # channel 40 = zero displacement: mean over 2 channels
    assert result.stdout.split()[-2:] == [backend, str(expected)]
    assert list((folder / "jit").iterdir()), "the operator was not compiled inside the non-ASCII folder"
