"""Compile the correlation operator's CUDA sources with nvcc, without a GPU.

Jittor only compiles a jt.code ``cuda_src`` on a CUDA machine, so a broken kernel would be invisible on CPU.
This test builds the translation unit the way Jittor's code op does: it takes the JIT template of the
installed ``jittor/src/ops/code_op.cc`` (the @ARGS_DEF / @ARGS / @PRECALC / @alias definitions), builds the
jit-key definitions of ``CodeOp::jit_prepare`` (IN_SIZE, inN_dim, inN_type, HEADER with the leading kernels
moved into it, CODE, index_t), expands it with Jittor's own preprocessor (``jt.core.op_compiler.precompile``)
and compiles the result with ``nvcc -arch=sm_90``. Only ``jit_run``'s Jittor-object plumbing is replaced by a
function taking the same pointers and shapes (@ARGS_DEF). ptxas must report no register spills.
"""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from jittor_sbvsr.runtime import jittor as _load_jittor

jt = _load_jittor()

NVCC = shutil.which("nvcc")
pytestmark = pytest.mark.skipif(NVCC is None, reason="nvcc not found: CUDA sources cannot be compile-checked")

PRELUDE = """#include <cstdint>
typedef int8_t int8; typedef int16_t int16; typedef int32_t int32; typedef int64_t int64;
typedef uint8_t uint8; typedef float float32; typedef double float64;
"""


def jit_template():
    """The JIT half of code_op.cc up to jit_run, plus an entry point with jit_run's locals as parameters."""
    text = (Path(jt.__file__).parent / "src" / "ops" / "code_op.cc").read_text(encoding="utf-8")
    start = text.index("#else // JIT") + len("#else // JIT")
    end = text.index("namespace jittor {", start)
    return text[start:end] + "namespace jittor {\nvoid jit_entry(@ARGS_DEF) {\n@PRECALC\n@CODE\n}\n}\n"


def split_kernels(src):
    """CodeOp::jit_prepare: leading blocks that start with '_' (kernels) go to the header, the rest is CODE."""
    moved, i = [], 0
    while i < len(src):
        if src[i] in " \t\n":
            moved.append(src[i])
        elif src[i] == "_":
            depth = 0
            while i < len(src):
                moved.append(src[i])
                depth += {"{": 1, "}": -1}.get(src[i], 0)
                if src[i] == "}" and depth == 0:
                    break
                i += 1
        else:
            break
        i += 1
    return "".join(moved), src[i:]


def expand(op, inputs, outputs):
    """Translation unit of a jt.code op; ``inputs``/``outputs`` are (rank, dtype) pairs."""
    kernels, code = split_kernels(op["cuda_src"])
    defs = {"JIT": "1", "JIT_cuda": "1", "index_t": "int64", "IN_SIZE": str(len(inputs)),
            "OUT_SIZE": str(len(outputs)), "HEADER": op["cuda_header"] + "\nnamespace jittor {\n" + kernels + "}",
            "CODE": code}
    for prefix, vars_ in (("in", inputs), ("out", outputs)):
        for i, (rank, dtype) in enumerate(vars_):
            defs[f"{prefix}{i}_dim"] = f"{rank:x}"
            defs[f"{prefix}{i}_type"] = dtype
    body = jt.core.op_compiler.precompile(defs, jit_template())
    # OpCompiler::get_jit_src: every key except CODE and HEADER also becomes a #define.
    macros = "".join(f"#define {k} {v}\n" for k, v in defs.items() if k not in ("CODE", "HEADER"))
    return PRELUDE + macros + body


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_cuda_source_compiles_for_sm90(direction, dtype, tmp_path):
    from cuda_ops import correlation_op

    if direction == "forward":
        op, inputs, outputs = correlation_op.FORWARD, [(4, dtype)] * 2, [(4, dtype)]
    else:
        op, inputs, outputs = correlation_op.BACKWARD, [(4, dtype)] * 3, [(4, dtype)] * 2
    source = tmp_path / f"correlation_{direction}_{dtype}.cu"
    source.write_text(expand(op, inputs, outputs), encoding="utf-8")
    result = subprocess.run([NVCC, "-arch=sm_90", "-std=c++14", "-Xptxas", "-v", "-c", str(source),
                             "-o", str(tmp_path / "out.o")], capture_output=True, text=True, timeout=300)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log
    spills = re.findall(r"(\d+) bytes spill stores", log)
    assert spills and all(n == "0" for n in spills), log
