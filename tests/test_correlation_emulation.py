"""The correlation operator's CUDA kernels executed on the CPU, compared with the operator Jittor runs here.

No GPU is needed: tests/cuda_emulation/ compiles the unchanged CUDA source with the system C++ compiler. Blocks
run one after another and the 128 threads of a block as real threads with a barrier for __syncthreads, so the
kernels' indexing, tiling, channel chunking and border handling execute for real; a ThreadSanitizer build looks
for races between the threads of a block, an AddressSanitizer + UndefinedBehaviorSanitizer build for accesses
outside buffers and arrays. The kernels, the geometry constants and the jt.code source that launches them are
the strings cuda_ops/correlation_op.py hands to Jittor, so there is no second copy of any of them.
"""
import math
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from jittor_sbvsr.runtime import jittor as _load_jittor

from cuda_ops import correlation_op
from cuda_ops.geometry import CHANNELS, GRID, MAX_DISPLACEMENT

jt = _load_jittor()

EMULATION = Path(__file__).resolve().parent / "cuda_emulation"
CXX = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
pytestmark = pytest.mark.skipif(CXX is None, reason="no C++ compiler (g++, c++ or $CXX) to build the emulation")

COMPILE_FLAGS = ["-std=c++17", "-pthread", "-Wall", "-Werror", "-Wno-unknown-pragmas", "-Wno-sign-compare"]
FLAVOURS = {
    "plain": ["-O2"],
    "thread": ["-O1", "-g", "-fsanitize=thread"],
    "address": ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"],
}
# Stop at the first report, with a non-zero exit status.
SANITIZER_ENV = {"TSAN_OPTIONS": "halt_on_error=1", "ASAN_OPTIONS": "detect_leaks=0"}
LAUNCH = re.compile(r"([\w:]+(?:<[^<>;]*>)?)\s*<<<(.*?)>>>\s*\(", re.S)
# The kernels' tile of kTileX x kTileY pixels, one thread each, as the CUDA source defines it.
TILE_X, TILE_Y = (int(re.search(rf"constexpr int {name} = (\d+);", correlation_op.CUDA_HEADER)[1])
                  for name in ("kTileX", "kTileY"))


def split_top_level(text):
    """Split at the commas outside parentheses: 'f(a, b), c' -> ['f(a, b)', 'c']."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    return parts + [text[start:].strip()]


def host_launches(source):
    """Rewrite every `kernel<<<grid, block>>>(args)` into `::cuda_host::launch(kernel, dim3(grid), dim3(block),
    args)`: the launch configuration stays the one the CUDA source computes."""
    def rewrite(match):
        config = split_top_level(match[2])
        assert len(config) == 2, f"launch with shared memory or stream is not emulated: {match[0]}"
        return f"::cuda_host::launch({match[1]}, dim3({config[0]}), dim3({config[1]}), "

    rewritten, count = LAUNCH.subn(rewrite, source)
    assert count > 0 and "<<<" not in rewritten, "launches not found in the CUDA source"
    return rewritten


def build(directory, flavour, header=correlation_op.CUDA_HEADER, device="cuda"):
    """Compile the emulator of the operator's CUDA code (cuda_header as given, or a mutation) into directory;
    with ``device`` "cpu", the same program around the operator's C++ code instead (no launches to rewrite)."""
    directory.mkdir(parents=True, exist_ok=True)
    kernels = host_launches(header) if device == "cuda" else correlation_op.CPU_HEADER
    (directory / "correlation_kernels.inc").write_text(kernels, encoding="utf-8")
    (directory / "forward_src.inc").write_text(correlation_op.FORWARD[f"{device}_src"] + "\n", encoding="utf-8")
    (directory / "backward_src.inc").write_text(correlation_op.BACKWARD[f"{device}_src"] + "\n", encoding="utf-8")
    binary = directory / "correlation_emulator"
    cpu_flags = ["-march=native", "-fopenmp"] if device == "cpu" else []  # as Jittor compiles the C++ kernels
    result = subprocess.run([CXX, *COMPILE_FLAGS, *FLAVOURS[flavour], *cpu_flags, f"-I{EMULATION}",
                             f"-I{directory}", str(EMULATION / "correlation_emulator.cc"), "-o", str(binary)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return binary


def sanitizer_missing(flavour, directory):
    """Why this compiler cannot build and run a program with the flavour's sanitizer, or None when it can."""
    directory.mkdir(parents=True, exist_ok=True)
    source, binary = directory / "probe.cc", directory / "probe"
    source.write_text("#include <thread>\nint main() { std::thread([] {}).join(); }\n", encoding="utf-8")
    result = subprocess.run([CXX, *COMPILE_FLAGS, *FLAVOURS[flavour], str(source), "-o", str(binary)],
                            capture_output=True, text=True, timeout=120)
    if result.returncode == 0:
        result = subprocess.run([str(binary)], capture_output=True, text=True, timeout=60,
                                env={**os.environ, **SANITIZER_ENV})
    if result.returncode == 0:
        return None
    lines = result.stderr.strip().splitlines()
    return f"{CXX} {' '.join(FLAVOURS[flavour])} does not work here: {lines[0] if lines else result.returncode}"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    """emulator(flavour, header) -> path of the emulator compiled from header (default: the operator's
    cuda_header), built once per flavour and header; skips when the flavour's sanitizer does not work here."""
    root, built, missing = tmp_path_factory.mktemp("cuda_emulation"), {}, {}

    def get(flavour, header=correlation_op.CUDA_HEADER, device="cuda"):
        if flavour != "plain" and flavour not in missing:
            missing[flavour] = sanitizer_missing(flavour, root / f"probe-{flavour}")
        if missing.get(flavour):
            pytest.skip(missing[flavour])
        key = (flavour, header, device)
        if key not in built:
            built[key] = build(root / f"{flavour}-{len(built)}", flavour, header, device)
        return built[key]

    return get


def run_emulator(binary, first, second, grad, directory):
    """(corr, d_first, d_second, launches, completed process) from one emulator run on the given arrays."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, array in (("first", first), ("second", second), ("grad", grad)):
        array.tofile(directory / f"{name}.bin")
    dtype = first.dtype
    result = subprocess.run([str(binary), dtype.name, *map(str, first.shape), str(directory)],
                            capture_output=True, text=True, timeout=120, env={**os.environ, **SANITIZER_ENV})
    if result.returncode != 0:
        return None, None, None, [], result
    outputs = [np.fromfile(directory / f"{name}.bin", dtype).reshape(shape)
               for name, shape in (("corr", grad.shape), ("d_first", first.shape), ("d_second", first.shape))]
    launches = [tuple(map(int, line.split()[1:])) for line in result.stdout.splitlines() if line.startswith("launch")]
    return (*outputs, launches, result)


def operator_outputs(first, second, grad):
    """corr, d_first, d_second from the jt.code operator on Jittor's device (the C++ kernels on a CPU machine),
    its forward and backward called as jt.grad calls them; float64 stays float64."""
    with jt.flag_scope(auto_convert_64_to_32=0):
        op = correlation_op.Correlation()
        corr = op.execute(jt.array(first), jt.array(second))
        d_first, d_second = op.grad(jt.array(grad))
        return corr.numpy(), d_first.numpy(), d_second.numpy()


def absolute_sums(first, second, grad):
    """The correlation and its two gradients evaluated on |inputs| in float64 (numpy): the sums of |terms| that
    bound the rounding error of any summation order."""
    f, s, g = (np.abs(a).astype(np.float64) for a in (first, second, grad))
    _, c, h, w = f.shape
    r = MAX_DISPLACEMENT
    fp, sp, gp = (np.pad(a, [(0, 0), (0, 0), (r, r), (r, r)]) for a in (f, s, g))
    shifts = [(dy, dx) for dy in range(GRID) for dx in range(GRID)]  # output channel k = dy * GRID + dx

    def window(a, dy, dx):
        return a[:, :, dy:dy + h, dx:dx + w]

    corr = np.stack([(f * window(sp, dy, dx)).sum(1) for dy, dx in shifts], axis=1) / c
    d_first = sum(g[:, k:k + 1] * window(sp, dy, dx) for k, (dy, dx) in enumerate(shifts)) / c
    d_second = sum(window(gp, 2 * r - dy, 2 * r - dx)[:, k:k + 1] * window(fp, 2 * r - dy, 2 * r - dx)
                   for k, (dy, dx) in enumerate(shifts)) / c
    return corr, d_first, d_second


def inputs(dtype, shape, kind, seed=0):
    """first, second ([B, C, H, W]) and grad ([B, 81, H, W]): 'random' normal values, or 'constant' ones whose
    products and sums are exact in both precisions."""
    b, _, h, w = shape
    shapes = (shape, shape, (b, CHANNELS, h, w))
    if kind == "constant":
        return [np.full(s, value, dtype) for s, value in zip(shapes, (1.5, -0.75, 0.5))]
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


def assert_matches_operator(got, first, second, grad):
    """Each emulated output equals the operator's within (n + 2) eps sum|terms| (n = C terms per forward value,
    81 per gradient value): the worst rounding of both float sums of n products plus the 1/C scaling, whatever
    the order of summation or use of fused multiply-adds, while one missing or extra term fails. Measured
    differences stay below 2.5 eps sum|terms|. NaN (a value never written) fails too."""
    eps = np.spacing(first.dtype.type(1))  # machine epsilon (np.finfo warns once Jittor has set flush-to-zero)
    want = operator_outputs(first, second, grad)
    terms = (first.shape[1], CHANNELS, CHANNELS)
    for name, g, w, bound, n in zip(("corr", "d_first", "d_second"), got, want, absolute_sums(first, second, grad),
                                    terms):
        error = np.abs(g.astype(np.float64) - w)
        tolerance = (n + 2) * eps * bound
        bad = ~(error <= tolerance)
        assert not bad.any(), (f"{name}: {bad.sum()} of {bad.size} values differ (NaN: {np.isnan(g).sum()}); "
                               f"first at {tuple(np.argwhere(bad)[0])}, max error {np.nanmax(error):.3g}")


def expected_launches(b, h, w):
    """Forward: one block per tile and batch item, one thread per tile pixel; backward: the same tiles for
    2 B items (d_first of each item, then d_second)."""
    tiles, threads = (math.ceil(w / TILE_X), math.ceil(h / TILE_Y)), TILE_X * TILE_Y
    return [(*tiles, b, threads, 1, 1), (*tiles, 2 * b, threads, 1, 1)]


# H and W of 1, 2, 3, 31, 33 and 37x53 (tile edges and single-pixel images); channel counts around the chunk
# (8 channels for float32, 4 for float64): fewer than one chunk, one exactly, and partial last chunks.
CASES = [
    ("float32", (3, 1, 1, 1), "random"),
    ("float32", (3, 3, 1, 2), "random"),
    ("float32", (3, 9, 2, 3), "random"),
    ("float32", (3, 13, 3, 31), "random"),
    ("float32", (3, 8, 31, 33), "random"),
    ("float32", (3, 17, 33, 1), "random"),
    ("float32", (3, 13, 37, 53), "random"),
    ("float32", (3, 5, 33, 31), "constant"),
    ("float64", (3, 1, 1, 3), "random"),
    ("float64", (3, 5, 2, 1), "random"),
    ("float64", (3, 7, 31, 2), "random"),
    ("float64", (3, 4, 3, 33), "random"),
    ("float64", (3, 6, 37, 53), "random"),
    ("float64", (3, 3, 33, 31), "constant"),
]


def case_id(case):
    dtype, (b, c, h, w), kind = case
    return f"{dtype}-{b}x{c}x{h}x{w}-{kind}"


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_emulated_cuda_kernels_match_operator(case, emulator, tmp_path):
    dtype, shape, kind = case
    first, second, grad = inputs(dtype, shape, kind)
    *got, launches, result = run_emulator(emulator("plain"), first, second, grad, tmp_path)
    assert result.returncode == 0, result.stderr
    assert launches == expected_launches(shape[0], *shape[2:])
    assert_matches_operator(got, first, second, grad)


# Small grids (sanitized threads are slow): a single pixel, partial tiles, two tile columns, several chunks.
SANITIZED = [
    ("thread", "float32", (1, 9, 5, 33)),
    ("thread", "float64", (2, 5, 3, 2)),
    ("address", "float32", (2, 9, 1, 1)),
    ("address", "float64", (1, 5, 6, 35)),
]


@pytest.mark.parametrize("flavour,dtype,shape", SANITIZED,
                         ids=[f"{f}-{case_id((d, s, 'random'))}" for f, d, s in SANITIZED])
def test_sanitized_emulation_is_clean(flavour, dtype, shape, emulator, tmp_path):
    first, second, grad = inputs(dtype, shape, "random", seed=1)
    *got, _, result = run_emulator(emulator(flavour), first, second, grad, tmp_path)
    assert result.returncode == 0 and "Sanitizer" not in result.stderr, result.stderr[-6000:]
    assert_matches_operator(got, first, second, grad)


@pytest.mark.parametrize("shape", [(1, 3, 1, 1), (2, 2, 2, 2), (1, 5, 2, 3)], ids=str)
def test_cpu_kernels_at_the_smallest_sizes_are_clean_under_address_sanitizer(shape, emulator, tmp_path):
    """The C++ kernels (the CPU path of every run here) at the 1x1 and 2x2 sizes of PWC-Net's coarsest pyramid
    levels, where nearly every displacement falls outside the image: no out-of-bounds access, every value written."""
    first, second, grad = inputs("float32", shape, "random", seed=2)
    *got, launches, result = run_emulator(emulator("address", device="cpu"), first, second, grad, tmp_path)
    assert result.returncode == 0 and "Sanitizer" not in result.stderr, result.stderr[-6000:]
    assert launches == []
    assert_matches_operator(got, first, second, grad)


def without_second_barrier(header):
    """The forward kernel with its second __syncthreads removed: the next chunk's load races with the reads."""
    parts = header.split("__syncthreads();")
    assert len(parts) > 2
    return "__syncthreads();".join(parts[:2]) + "__syncthreads();".join(parts[2:])


def with_early_exit(header):
    """The forward kernel with threads right of the image leaving before the channel loop and its barriers."""
    anchor = "const int x0 = blockIdx.x * kTileX, y0 = blockIdx.y * kTileY, b = blockIdx.z;"
    assert header.count(anchor) == 1
    return header.replace(anchor, anchor + " if (x0 + tx >= W) return;")


@pytest.mark.parametrize("mutate,flavour,message", [
    (without_second_barrier, "thread", "ThreadSanitizer: data race"),
    (with_early_exit, "plain", "of 128 threads (the others have exited)"),
], ids=["missing-barrier", "exit-before-barrier"])
def test_emulation_catches_broken_synchronisation(mutate, flavour, message, emulator, tmp_path):
    """The emulation is worth running: a kernel that breaks CUDA's synchronisation rules fails it."""
    first, second, grad = inputs("float32", (1, 9, 4, 33), "random")
    *_, result = run_emulator(emulator(flavour, mutate(correlation_op.CUDA_HEADER)), first, second, grad,
                              tmp_path)
    assert result.returncode != 0 and message in result.stderr, result.stderr[-3000:]
