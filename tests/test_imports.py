"""Importing is free of side effects, the Jittor-free modules stay Jittor-free, and the imports form no cycle.

The dynamic checks run in one fresh interpreter that imports every module of ``jittor_sbvsr`` and ``cuda_ops``
one by one, recording around each import the environment, whether Jittor got imported and Jittor's
``use_cuda`` flag. The static check reads every import statement (function-level ones included) with ``ast``.
"""
import ast
import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

PACKAGES = ("jittor_sbvsr", "cuda_ops")
# modules that must load without Jittor: the file readers, I/O, metrics, the commands' argument parsing, ...
JITTOR_FREE = {
    "cuda_ops", "cuda_ops.conv_onednn", "cuda_ops.correlation_vectorized", "cuda_ops.geometry", "cuda_ops.host",
    "cuda_ops.onednn_library", "cuda_ops.warp",
    "jittor_sbvsr", "jittor_sbvsr.adapt", "jittor_sbvsr.api", "jittor_sbvsr.background", "jittor_sbvsr.checkpoint",
    "jittor_sbvsr.config", "jittor_sbvsr.data", "jittor_sbvsr.data.camera_clips", "jittor_sbvsr.data.folders",
    "jittor_sbvsr.data.imgproc", "jittor_sbvsr.data.kernels", "jittor_sbvsr.default_weights", "jittor_sbvsr.degrade",
    "jittor_sbvsr.demo", "jittor_sbvsr.doctor", "jittor_sbvsr.errors", "jittor_sbvsr.ffmpeg", "jittor_sbvsr.files",
    "jittor_sbvsr.infer", "jittor_sbvsr.interrupts", "jittor_sbvsr.metrics", "jittor_sbvsr.pipeline",
    "jittor_sbvsr.ranks", "jittor_sbvsr.restricted_pickle", "jittor_sbvsr.resume", "jittor_sbvsr.run_folder",
    "jittor_sbvsr.runtime",
    "jittor_sbvsr.state_dict", "jittor_sbvsr.train", "jittor_sbvsr.trainer", "jittor_sbvsr.trainer.experiment",
    "jittor_sbvsr.trainer.options", "jittor_sbvsr.video_io", "jittor_sbvsr.weights",
}
# command modules: nothing imports them, except adapt, which ends by running infer
COMMANDS = {"jittor_sbvsr.adapt", "jittor_sbvsr.doctor", "jittor_sbvsr.infer", "jittor_sbvsr.train"}
ALLOWED_COMMAND_IMPORTS = {("jittor_sbvsr.adapt", "jittor_sbvsr.infer")}

PROBE = r"""
import importlib, json, os, sys

def state():
    jt = sys.modules.get("jittor")
    return dict(os.environ), jt is not None, int(jt.flags.use_cuda) if jt is not None else None

def record(name):
    env, had_jittor, cuda = state()
    error = None
    try:
        importlib.import_module(name)
    except Exception as e:
        error = f"{type(e).__name__}: {e}"
    env_after, has_jittor, cuda_after = state()
    changed = sorted(k for k in set(env) | set(env_after) if env.get(k) != env_after.get(k))
    return {"name": name, "error": error, "env_changed": changed, "imported_jittor": has_jittor and not had_jittor,
            "use_cuda": [cuda if had_jittor else cuda_after, cuda_after]}

free, others = json.loads(sys.argv[1]), json.loads(sys.argv[2])
rows = [record(name) for name in free]
rows.append(record("cuda_ops.correlation_op"))  # before Jittor is imported: refused, without side effects
rows += [record(name) for name in others]
print(json.dumps(rows))
"""


def package_modules():
    """{module name: source path} of every module of PACKAGES."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((Path(ROOT) / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def run_python(args):
    return subprocess.run([sys.executable] + args, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT),
                          capture_output=True, text=True, timeout=300)


def test_importing_changes_nothing_and_jittor_free_modules_stay_free():
    modules = package_modules()
    assert JITTOR_FREE <= set(modules), sorted(JITTOR_FREE - set(modules))
    others = sorted((m for m in modules if m not in JITTOR_FREE), key=lambda m: (m.startswith("cuda_ops"), m))
    proc = run_python(["-c", PROBE, json.dumps(sorted(JITTOR_FREE)), json.dumps(others)])
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout.splitlines()[-1])
    for row in rows:
        assert row["env_changed"] == [], row
        assert row["use_cuda"][1] in (None, row["use_cuda"][0]), row  # no import switches CUDA on
    early_op = next(row for row in rows if row["name"] == "cuda_ops.correlation_op")
    assert early_op["error"].startswith("RuntimeError") and "not imported yet" in early_op["error"], early_op
    assert not early_op["imported_jittor"], early_op
    for row in rows:
        if row is not early_op:
            assert row["error"] is None, row
    assert [row["name"] for row in rows if row["name"] in JITTOR_FREE and row["imported_jittor"]] == []
    assert any(row["imported_jittor"] for row in rows), "no module imported Jittor: the check proved nothing"


def test_commands_parse_their_options_without_jittor():
    for command in ("infer", "train", "adapt"):
        proc = run_python(["-X", "importtime", "-m", f"jittor_sbvsr.{command}", "--help"])
        assert proc.returncode == 0 and "usage:" in proc.stdout, (command, proc.stderr[-2000:])
        imported = [line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()
                    if line.startswith("import time:")]
        assert "jittor_sbvsr.video_io" in imported, command  # the probe sees the package's own imports
        assert [m for m in imported if m == "jittor" or m.startswith("jittor.")] == [], command


def module_imports(name, path, modules):
    """The modules of ``modules`` that the source of ``name`` imports anywhere (function bodies included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # ``from pkg import sub`` imports the module pkg.sub when there is one, else names of pkg
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t in modules and t != name)
    return found


def find_cycle(graph):
    """One import cycle of ``graph`` (module -> imported modules) as a list [a, b, ..., a], or None."""
    done, stack = set(), []

    def visit(node):
        if node in stack:
            return stack[stack.index(node):] + [node]
        if node in done:
            return None
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            cycle = visit(nxt)
            if cycle:
                return cycle
        stack.pop()
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start)
        if cycle:
            return cycle
    return None


def import_graph():
    modules = package_modules()
    return {name: module_imports(name, path, modules) for name, path in modules.items()}


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    assert graph["jittor_sbvsr.models.pwc_net"] >= {"cuda_ops", "jittor_sbvsr.runtime"}  # the parser sees them
    assert "jittor_sbvsr.runtime" in graph["jittor_sbvsr"]  # a function-level import
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_layering():
    graph = import_graph()
    assert [(a, b) for a, targets in graph.items() if a.startswith("cuda_ops") for b in targets
            if b.startswith("jittor_sbvsr")] == [], "cuda_ops imports jittor_sbvsr"
    upward = {(a, b) for a, targets in graph.items() for b in targets if b in COMMANDS}
    assert upward <= ALLOWED_COMMAND_IMPORTS, sorted(upward - ALLOWED_COMMAND_IMPORTS)


def test_cycle_finder_sees_function_level_and_relative_imports(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "a.py").write_text("from . import b\n")
    (tmp_path / "pkg" / "b.py").write_text("def f():\n    from .a import x\n")
    modules = {"pkg": tmp_path / "pkg" / "__init__.py", "pkg.a": tmp_path / "pkg" / "a.py",
               "pkg.b": tmp_path / "pkg" / "b.py"}
    graph = {name: module_imports(name, path, modules) for name, path in modules.items()}
    assert graph == {"pkg": set(), "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.a"}}
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.a"]
