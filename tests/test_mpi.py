"""Data-parallel training through Jittor's MPI support: 2 processes == 1 process with the combined batch."""
import os
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, jt
from jittor_sbvsr.checkpoint import load_checkpoint
from jittor_sbvsr.models import PWC_Recons
from jittor_sbvsr.train import run
from synthetic_data import seeded_init, write_train_set

MPIRUN = shutil.which("mpirun")
pytestmark = pytest.mark.skipif(MPIRUN is None or not jt.compile_extern.has_mpi,
                                reason="OpenMPI (mpirun and mpicc) is not installed; .ci/run installs it")


def test_two_processes_equal_one_process_with_the_combined_batch(tmp_path):
    train = write_train_set(str(tmp_path / "train"), n_videos=1, n_frames=8, h=64, w=64)  # 4 windows: 2 steps
    init = str(tmp_path / "init.pkl")
    with open(init, "wb") as f:
        pickle.dump({"model": seeded_init(PWC_Recons(n_feat=16, extra_RBS=1, recons_RBS=1))}, f)
    common = ["--data-train", train, "--data-val", "none", "--pre-train", init, "--experiment-dir", str(tmp_path),
              "--epochs", "1", "--lr", "1e-3", "--n-feat", "16", "--extra-rbs", "1", "--recons-rbs", "1",
              "--patch-size", "16", "--test-every", "1", "--n-threads", "0", "--no-progress"]
    single = run(common + ["--batch-size", "2", "--save", "single"])
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    proc = subprocess.run([MPIRUN, "-np", "2", "--oversubscribe", sys.executable, "-m", "jittor_sbvsr.train"]
                          + common + ["--batch-size", "1", "--save", "mpi"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, _ = load_checkpoint(os.path.join(single, "model", "model_latest.pkl"))
    b, _ = load_checkpoint(os.path.join(tmp_path, "mpi", "model", "model_latest.pkl"))
    assert a["optimizer"]["updates"] == b["optimizer"]["updates"] == 2
    assert max(float(np.abs(a["model"][k] - b["model"][k]).max()) for k in a["model"]) <= 1e-5
    assert abs(a["history"][0]["loss"] - b["history"][0]["loss"]) <= 1e-5 * a["history"][0]["loss"]
    log = open(os.path.join(tmp_path, "mpi", "log.txt")).read()
    assert "2 MPI processes" in log and log.count("Epoch   1 with") == 1  # only rank 0 writes
