"""Ctrl-C and SIGTERM end infer and train cleanly: real processes, real signals.

Each command runs in a session of its own, like a job started from a terminal, and the signal goes to its
whole process group, as a terminal's Ctrl-C (or ``timeout``, ``kill -- -PGID``) sends it: data workers and
helper processes get it too. Afterwards the command must have printed its line, exited with 130 (SIGINT) or
143 (SIGTERM), kept what it promises (summary.json marked incomplete, only complete frames and checkpoints)
and left no temporary file and no process of its group behind.
"""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT
from infer_support import write_frames, write_tiny_weights
from jittor_sbvsr import video_io
from jittor_sbvsr.files import PARTIAL
from synthetic_data import write_train_set

TRAIN_TINY = ["--random-flow-init", "--n-feat", "16", "--extra-rbs", "1", "--recons-rbs", "1", "--patch-size", "16",
              "--batch-size", "2", "--no-progress", "--print-every", "1"]


def start(argv, cwd):
    """A Python process running ``argv`` in a new session (its own process group)."""
    return subprocess.Popen([sys.executable] + argv, cwd=cwd, env=dict(os.environ, PYTHONPATH=ROOT),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_until(condition, proc, timeout=120):
    deadline = time.time() + timeout
    while not condition():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "the process never got there"
        time.sleep(0.05)


def finish(proc):
    """(exit status, stdout, stderr) once the process has ended; asserts that its group is empty."""
    out, err = proc.communicate(timeout=120)
    deadline = time.time() + 10
    while True:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        assert time.time() < deadline, "processes of the group outlived the command"
        time.sleep(0.05)
    return proc.returncode, out, err


def leftovers(folder):
    return [os.path.join(root, name) for root, _, names in os.walk(folder) for name in names
            if PARTIAL in name or ".tmp" in name]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_infer_interrupted_by_a_signal_to_its_process_group(tmp_path, signum):
    rng = np.random.default_rng(0)
    write_frames(tmp_path / "lr", [rng.integers(0, 256, (24, 32, 3), dtype=np.uint8) for _ in range(300)])
    weights = write_tiny_weights(tmp_path / "tiny.pkl")
    proc = start(["-m", "jittor_sbvsr.infer", "lr", "--model", weights, "--run-name", "r", "--save-video",
                  "--quiet"], tmp_path)
    frames = tmp_path / "infer_results" / "r" / "lr"
    wait_until(lambda: frames.is_dir() and any(n.endswith(".png") for n in os.listdir(frames)), proc)
    os.killpg(proc.pid, signum)
    code, _, err = finish(proc)
    written = sorted(n for n in os.listdir(frames) if n.endswith(".png"))
    assert code == 128 + signum, err
    run = os.path.join("infer_results", "r")
    want = f"infer: interrupted: {len(written)} frame(s) written to {run}, each complete"
    assert err.strip().splitlines()[-1] == want
    summary = json.loads((tmp_path / run / "summary.json").read_text())
    assert summary["complete"] is False and summary["total"]["frames"] == len(written) < 296
    for name in written:
        assert np.asarray(Image.open(frames / name)).shape == (96, 128, 3)
    assert leftovers(tmp_path) == [] and not os.path.exists(tmp_path / run / "lr.mp4")


def test_train_ctrl_c_with_data_workers(tmp_path):
    write_train_set(str(tmp_path / "train"), n_videos=2, n_frames=7, h=72, w=80)
    proc = start(["-m", "jittor_sbvsr.train", "--data-train", "train", "--experiment-dir", "exp", "--save", "s",
                  "--n-threads", "2", "--test-every", "1000"] + TRAIN_TINY, tmp_path)
    log = tmp_path / "exp" / "s" / "log.txt"
    wait_until(lambda: log.exists() and "Loss" in log.read_text(), proc)
    os.killpg(proc.pid, signal.SIGINT)
    code, _, err = finish(proc)
    assert code == 130 and err.strip().splitlines()[-1] == "interrupted"
    assert log.read_text().strip().splitlines()[-1].startswith("interrupted: the checkpoints in exp/s/model are")
    assert leftovers(tmp_path) == []


# sends SIGTERM to its own process while model_latest.pkl is half written (after the data, before the rename)
SIGTERM_DURING_CHECKPOINT = """
import os, signal, sys
real_fsync = os.fsync

def fsync(fd):
    real_fsync(fd)
    if "model_latest.pkl" in os.readlink(f"/proc/self/fd/{fd}"):
        os.kill(os.getpid(), signal.SIGTERM)

os.fsync = fsync
from jittor_sbvsr.train import main
main(sys.argv[1:])
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="names open files through /proc")
def test_train_sigterm_while_a_checkpoint_is_written(tmp_path):
    write_train_set(str(tmp_path / "train"), n_videos=1, n_frames=5, h=64, w=64)
    proc = start(["-c", SIGTERM_DURING_CHECKPOINT, "--data-train", "train", "--experiment-dir", "exp", "--save", "s",
                  "--n-threads", "0", "--test-every", "1", "--epochs", "1"] + TRAIN_TINY, tmp_path)
    code, _, err = finish(proc)
    assert code == 143 and err.strip().splitlines()[-1] == "interrupted", err
    assert os.listdir(tmp_path / "exp" / "s" / "model") == []  # the half-written checkpoint is gone
    assert leftovers(tmp_path) == []


def test_leftovers_of_a_killed_run_are_never_frames(tmp_path):
    """SIGKILL cannot be caught: what a killed run leaves must not be taken as input by a later run."""
    rng = np.random.default_rng(0)
    folder = write_frames(tmp_path / "v", [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(2)])
    for name in ("00000001.png" + PARTIAL + "1a2b3c4d", "._00000000.png", ".hidden.png"):
        (tmp_path / "v" / name).write_bytes(b"not a frame")
    (tmp_path / ("v.mp4" + PARTIAL + "1a2b3c4d")).write_bytes(b"not a video")
    assert [os.path.basename(p) for p in video_io.list_frames(folder)] == ["00000000.png", "00000001.png"]
    assert [v.name for v in video_io.discover(str(tmp_path))] == ["v"]


def test_a_killed_runs_forked_children_do_not_keep_its_folder_locked(tmp_path):
    """Jittor forks its compiler pool after infer has locked the run folder; killed outright, the run must not
    leave that lock to the children (a --resume right away was refused as 'in use by another run')."""
    from jittor_sbvsr import run_folder

    code = (f"import os, time\nfrom jittor_sbvsr import run_folder\nheld = run_folder.lock({str(tmp_path)!r})\n"
            "pid = os.fork()\nif pid == 0:\n    os.closerange(0, 3)\n    time.sleep(60)\n    os._exit(0)\n"
            "print(pid, flush=True)\nos._exit(0)\n")  # ends without closing anything itself, as a killed run
    # (a child of this process that dies of a signal would trip Jittor's SIGCHLD handler here)
    proc = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    child = int(proc.stdout)
    try:
        os.kill(child, 0)  # the child lives on
        run_folder.lock(str(tmp_path)).close()  # and yet the folder is free
    finally:
        os.kill(child, signal.SIGKILL)
