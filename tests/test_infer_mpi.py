"""``mpirun -np 2 python -m jittor_sbvsr.infer``: the work is shared (whole videos, or frame ranges of one video
with their context) and the outputs, metrics and summary equal those of one process."""
import csv
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, jt
from infer_support import pan_clip, write_frames, write_tiny_weights
from jittor_sbvsr.ranks import Share, plan

MPIRUN = shutil.which("mpirun")
needs_mpi = pytest.mark.skipif(MPIRUN is None or not jt.compile_extern.has_mpi,
                               reason="OpenMPI (mpirun and mpicc) is not installed; .ci/run installs it")


def test_plan():
    # several videos go whole, longest first to the least loaded process
    assert plan([10, 30, 20], 2, False) == [[Share(1)], [Share(0), Share(2)]]
    assert plan([10, 30], 3, False) == [[Share(1)], [Share(0)], []]
    # one video: contiguous ranges of centre frames; without --border centres 2..n-3, the last to the end
    assert plan([12], 2, False) == [[Share(0, 2, 6)], [Share(0, 6, None)]]
    assert plan([12], 3, True) == [[Share(0, 0, 4)], [Share(0, 4, 8)], [Share(0, 8, None)]]
    assert plan([5], 3, False) == [[], [], [Share(0, 2, None)]]  # one centre: the last process takes it
    assert plan([None], 2, False) == [[Share(0)], []]  # unknown length: not cut
    assert plan([7, 8], 1, True) == [[Share(0), Share(1)]]


def run(argv, cwd, np_=None):
    env = dict(os.environ, PYTHONPATH=ROOT, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    prefix = [MPIRUN, "-np", str(np_), "--oversubscribe"] if np_ else []
    proc = subprocess.run(prefix + [sys.executable, "-m", "jittor_sbvsr.infer"] + [str(a) for a in argv], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def outputs(run_dir):
    """{relative path: decoded pixels} of the PNGs, metrics.csv rows without timings, the summary's frames."""
    pngs = {}
    for folder, _, names in os.walk(run_dir):
        for name in names:
            if name.endswith(".png"):
                pngs[os.path.relpath(os.path.join(folder, name), run_dir)] = np.asarray(
                    Image.open(os.path.join(folder, name)))
    with open(os.path.join(run_dir, "metrics.csv"), newline="") as f:
        rows = [row[:4] for row in csv.reader(f)]
    summary = json.loads(open(os.path.join(run_dir, "summary.json")).read())
    return pngs, rows, {v: s["frames"] for v, s in summary["videos"].items()}, summary["total"].get("psnr")


def decoded(path):
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    w, h = next(reader)["size"]
    return np.stack([np.frombuffer(f, np.uint8).reshape(h, w, 3) for f in reader])


@needs_mpi
@pytest.mark.parametrize("layout", ["one video", "three videos"])
def test_two_processes_equal_one(tmp_path, layout):
    hr, lr = pan_clip(12)
    if layout == "one video":
        write_frames(tmp_path / "lr", lr)
        write_frames(tmp_path / "hr", hr)
        extra = ["--save-video", "--codec", "ffv1"]  # lossless: the decoded videos must be equal
    else:
        for k, n in enumerate((9, 6, 7)):
            write_frames(tmp_path / "lr" / f"v{k}", lr[:n])
            write_frames(tmp_path / "hr" / f"v{k}", hr[:n])
        extra = ["--border"]
    weights = write_tiny_weights(tmp_path / "tiny.pkl")
    common = ["lr", "--gt", "hr", "--model", weights, "--quiet", "--cpu"] + extra
    run(common + ["--run-name", "one"], tmp_path)
    proc = run(common + ["--run-name", "two"], tmp_path, np_=2)
    one, two = outputs(tmp_path / "infer_results" / "one"), outputs(tmp_path / "infer_results" / "two")
    assert sorted(one[0]) == sorted(two[0]) and all(np.array_equal(one[0][k], two[0][k]) for k in one[0])
    assert one[1:3] == two[1:3]  # metrics rows in the same order, per-video frame counts
    assert abs(one[3] - two[3]) < 1e-5  # pooled PSNR (merged from metrics.csv, whose values have 6 decimals)
    run_dir = tmp_path / "infer_results" / "two"
    assert not [n for n in os.listdir(run_dir) if n.startswith("metrics.rank") or ".partial-" in n]
    logs = sorted(n for n in os.listdir(run_dir) if n.startswith("inference_log_"))
    assert len(logs) == 2 and logs[1].endswith(".rank1.txt")
    assert "processes: 2; this one (rank 0) restores" in proc.stdout and "rank 1" not in proc.stdout
    if layout == "one video":
        assert "lr frames 2..5" in proc.stdout
        a, b = (decoded(tmp_path / "infer_results" / name / "lr.mkv") for name in ("one", "two"))
        assert len(a) == 12 and np.array_equal(a, b)  # 8 restored frames and 2 + 2 repeated at the edges
