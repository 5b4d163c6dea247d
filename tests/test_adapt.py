"""``python -m jittor_sbvsr.adapt``: the clip's windows, the command's errors and outputs, the starting weights
left untouched, exact resume, Ctrl-C on a real process, and the guard that keeps the starting weights when
adapting hurts. A tiny network (n_feat 16) on 24x24 LR camera clips, 16x16 crops, a few steps."""
import hashlib
import json
import os
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT
from jittor_sbvsr.adapt import main
from jittor_sbvsr.checkpoint import load_checkpoint
from jittor_sbvsr.config import ModelConfig
from jittor_sbvsr.data.camera_clips import load_photo, random_clip
from jittor_sbvsr.data.lr_windows import LRWindows, read_clips
from jittor_sbvsr.degrade import degrade_gaussian
from jittor_sbvsr.video_io import discover
from jittor_sbvsr.weights import load_model
from synthetic_data import seeded_init, write_frames

CONFIG = ModelConfig(n_feat=16, extra_rbs=1, recons_rbs=2)
TINY = ["--kernel", "1.2", "--patch-size", "16", "--batch-size", "2", "--quiet", "--log-every", "1"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """{lr, hr, short, start}: a 10-frame LR camera clip (24x24, sigma 1.2) and its HR frames, a 4-frame clip,
    and tiny starting weights."""
    root = tmp_path_factory.mktemp("adapt_clip")
    hr, _ = random_clip(load_photo("coffee"), (96, 96), 10, np.random.default_rng(0), max_speed=2.0)
    paths = {"lr": str(root / "lr"), "hr": str(root / "hr"), "short": str(root / "short"),
             "start": str(root / "start.pkl")}
    write_frames(paths["hr"], hr)
    write_frames(paths["lr"], [degrade_gaussian(f) for f in hr])
    write_frames(paths["short"], [degrade_gaussian(f) for f in hr[:4]])
    with open(paths["start"], "wb") as f:
        pickle.dump({"model": seeded_init(CONFIG.build()), "meta": {"model_config": CONFIG.to_dict()}}, f)
    return paths


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def weights(path):
    state, _ = load_checkpoint(path)
    return state["model"]


def error_line(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("adapt: error: "), err
    return err[0]


# ---------------------------------------------------------------------------------------------- windows

def test_windows_hold_out_every_fifth_and_repeat_their_crops(clip):
    windows = LRWindows(read_clips(discover(clip["lr"])), 16, seed=3)
    assert windows.separate and windows.held_out == [(0, 4)] and len(windows.train) == 5
    assert (0, 4) not in windows.train
    a, b = windows.held_out_batches(4), windows.held_out_batches(4)
    assert len(a) == 4 and all(np.array_equal(x, y) for x, y in zip(a, b))
    assert a[0].shape == (4, 5, 3, 16, 16) and a[0].dtype == np.float32 and 0 <= a[0].min() <= a[0].max() <= 1
    assert np.array_equal(windows.batch(7, 2), windows.batch(7, 2))
    assert not np.array_equal(windows.batch(7, 2), windows.batch(8, 2))


def test_too_few_windows_are_scored_on_training_windows(clip):
    clips = read_clips(discover(clip["lr"]), limit=7)
    windows = LRWindows(clips, 16)
    assert not windows.separate and windows.held_out == windows.train == [(0, 0), (0, 1), (0, 2)]
    assert "none held out" in windows.describe()


# ----------------------------------------------------------------------------------------------- errors

def test_errors_are_one_line_with_status_2(clip, tmp_path, capsys):
    out = ["--output", str(tmp_path / "run"), "--kernel", "1.2"]
    line = error_line(capsys, [clip["short"], "--model", clip["start"]] + TINY + out)
    assert clip["short"] in line and "4 frame(s)" in line and "at least 5" in line
    line = error_line(capsys, [clip["lr"], "--model", clip["start"], "--patch-size", "32"] + out)
    assert clip["lr"] in line and "24x24" in line and "--patch-size to at most 24" in line
    line = error_line(capsys, [str(tmp_path / "missing"), "--model", clip["start"]] + out)
    assert "missing: input not found" in line
    line = error_line(capsys, [clip["lr"], "--model", str(tmp_path / "none.pkl")] + out)
    assert "none.pkl: model file not found" in line
    line = error_line(capsys, ["--resume", str(tmp_path)])
    assert "config.json: not found" in line
    assert not os.path.exists(tmp_path / "run")
    with pytest.raises(SystemExit) as stop:
        main([clip["lr"], "--kernel", "1.2", "--patch-size", "18"])
    assert stop.value.code == 2 and "multiple of 4" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        main([clip["lr"]])
    assert stop.value.code == 2 and "give --kernel" in capsys.readouterr().err


def test_kernel_values_are_read_or_refused_in_one_line(clip, tmp_path, capsys):
    from jittor_sbvsr.adapt import read_kernel
    from jittor_sbvsr.degrade import fspecial_gaussian

    assert read_kernel("learn", 13) == "learn" and read_kernel("estimate", 13) == "estimate"
    gauss = read_kernel("2.4", 13)
    assert gauss.shape == (13, 13) and gauss.dtype == np.float32 and np.allclose(gauss, fspecial_gaussian(2.4, 13))
    small = tmp_path / "box.npy"
    np.save(small, np.full((3, 3), 2.0))
    padded = read_kernel(str(small), 13)
    assert padded.shape == (13, 13) and np.isclose(padded.sum(), 1) and np.allclose(padded[5:8, 5:8], 1 / 9)
    assert padded[:5].sum() == padded[8:].sum() == 0
    bad = {"even.npy": np.ones((4, 4)), "big.npy": np.ones((15, 15)), "negative.npy": -np.eye(3),
           "nan.npy": np.full((3, 3), np.nan)}
    out = ["--output", str(tmp_path / "run")] + TINY
    for name, kernel in bad.items():
        np.save(tmp_path / name, kernel)
        line = error_line(capsys, [clip["lr"], "--model", clip["start"]] + out + ["--kernel", str(tmp_path / name)])
        assert str(tmp_path / name) in line and "kernel must" in line, line
    for spec in ("sharp", "-1", "0", str(tmp_path / "missing.npy")):
        line = error_line(capsys, [clip["lr"], "--model", clip["start"]] + out + ["--kernel", spec])
        assert spec in line and "kernel" in line, line
    assert not os.path.exists(tmp_path / "run")


def test_a_known_kernel_replaces_the_estimate_and_frozen_modules_stay_put(clip):
    from jittor_sbvsr import runtime
    from jittor_sbvsr.degrade import fspecial_gaussian
    from jittor_sbvsr.trainer.adaptation import Adaptation

    jt = runtime.jittor()
    kernel = fspecial_gaussian(2.4, 13).astype(np.float32)
    for mode, flow_lr, frozen in ((kernel, 0.0, ("kernel_net", "flow_net")), ("estimate", 1e-3, ("kernel_net",)),
                                  ("learn", 0.0, ("flow_net",))):
        net, _, _ = load_model(clip["start"])
        start = {k: v.numpy().copy() for k, v in net.state_dict().items()}
        ad = Adaptation(net, LRWindows(read_clips(discover(clip["lr"])), 16), 2, 1e-3, flow_lr, kernel=mode)
        for _ in range(2):
            ad.step()
        changed = {k.split(".")[0] for k, v in net.state_dict().items() if not np.array_equal(v.numpy(), start[k])}
        assert not changed & set(frozen) and "recons_net" in changed, (frozen, changed)
        assert ("kernel_net" in changed) == (isinstance(mode, str) and mode == "learn")
    out, _ = net({"x": jt.array(ad.windows.batch(0, 2)), "mode": "train", "kernel": jt.array(kernel[None, None])})
    assert out["est_kernel"].shape == (2, 1, 13, 13) and np.allclose(out["est_kernel"].numpy()[1, 0], kernel)
    with pytest.raises(ValueError, match="unknown kernel mode"):
        Adaptation(net, ad.windows, 2, 1e-3, 0.0, kernel="guess")


def test_the_starting_weights_are_never_written(clip, tmp_path, capsys):
    folder = tmp_path / "run" / "model"
    folder.mkdir(parents=True)
    start = folder / "adapted.pkl"
    start.write_bytes(open(clip["start"], "rb").read())
    line = error_line(capsys, [clip["lr"], "--model", str(start), "--output", str(tmp_path / "run")] + TINY)
    assert "never overwritten" in line and str(start) in line
    assert digest(start) == digest(clip["start"])


# -------------------------------------------------------------------------------------- a short run

@pytest.fixture(scope="module")
def run(clip, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("adapt_run") / "run")
    before = digest(clip["start"])
    status = main([clip["lr"], "--model", clip["start"], "--steps", "3", "--gt", clip["hr"], "--output", out]
                  + TINY)
    assert status == 0 and digest(clip["start"]) == before
    return out


def test_run_writes_weights_log_curve_summary_and_infer_outputs(run):
    names = set(os.listdir(run))
    assert {"config.json", "log.txt", "loss.csv", "summary.json", "model", "infer"} <= names
    assert sorted(os.listdir(os.path.join(run, "model"))) == ["adapted.pkl", "model_latest.pkl"]
    net, _, config = load_model(os.path.join(run, "model", "adapted.pkl"))
    assert config == CONFIG
    rows = open(os.path.join(run, "loss.csv")).read().splitlines()
    assert rows[0] == "step,seconds,split,loss,L1,cycle,boundaries,sparse,center"
    assert [r.split(",")[:3:2] for r in rows[1:]] == [["0", "held-out"], ["1", "train"], ["2", "train"],
                                                      ["3", "train"], ["3", "held-out"]]
    summary = json.load(open(os.path.join(run, "summary.json")))
    assert summary["steps"] == 3 and summary["kept"] in ("adapted", "start")
    before, after = summary["held_out_before"]["loss"], summary["held_out_after"]["loss"]
    assert (summary["kept"] == "adapted") == (after < 0.99 * before)
    log = open(os.path.join(run, "log.txt")).read()
    assert "held-out loss before" in log and "guard: held-out loss" in log and "step 3/3" in log
    infer = json.load(open(os.path.join(run, "infer", "summary.json")))
    assert infer["complete"] and infer["total"]["frames"] == 6 and infer["total"]["psnr"] > 15
    assert infer["model"] == os.path.join(run, "model", "adapted.pkl")


def test_resume_continues_the_step_count_exactly(clip, run, tmp_path):
    common = [clip["lr"], "--model", clip["start"], "--no-infer"] + TINY
    whole, split = str(tmp_path / "whole"), str(tmp_path / "split")
    assert main(common + ["--steps", "4", "--output", whole]) == 0
    assert main(common + ["--steps", "2", "--output", split]) == 0
    assert main(["--resume", split, "--steps", "4", "--quiet"]) == 0
    a, _ = load_checkpoint(os.path.join(whole, "model", "model_latest.pkl"))
    b, _ = load_checkpoint(os.path.join(split, "model", "model_latest.pkl"))
    assert a["steps"] == b["steps"] == 4 and b["optimizer"]["updates"] == 4
    assert [r["step"] for r in b["history"]] == [1, 2, 3, 4]
    assert max(float(np.abs(a["model"][k] - b["model"][k]).max()) for k in a["model"]) <= 1e-6
    log = open(os.path.join(split, "log.txt")).read()
    assert "resumed" in log and "after step 2" in log and log.count("held-out loss before") == 1


def test_guard_keeps_the_starting_weights_when_adapting_hurts(clip, tmp_path):
    out = str(tmp_path / "hurt")
    assert main([clip["lr"], "--model", clip["start"], "--steps", "3", "--lr", "0.5", "--flow-lr", "0.5",
                 "--no-infer", "--output", out] + TINY) == 0
    summary = json.load(open(os.path.join(out, "summary.json")))
    assert summary["kept"] == "start"
    start, kept = weights(clip["start"]), weights(os.path.join(out, "model", "adapted.pkl"))
    assert all(np.array_equal(start[k], kept[k]) for k in start)
    assert "keeping the starting weights" in open(os.path.join(out, "log.txt")).read()


# ---------------------------------------------------------------------------------------------- Ctrl-C

def test_sigint_saves_the_last_step_and_exits_130(clip, tmp_path):
    out = tmp_path / "interrupted"
    proc = subprocess.Popen([sys.executable, "-m", "jittor_sbvsr.adapt", clip["lr"], "--model", clip["start"],
                             "--steps", "100000", "--no-infer", "--output", str(out)] + TINY,
                            cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    log = out / "log.txt"
    deadline = time.time() + 300
    while not (log.exists() and "step 3/" in log.read_text()):
        assert proc.poll() is None and time.time() < deadline, "adapt did not reach step 3"
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("adapt: interrupted after step "), err
    steps = int(lines[0].split("after step ")[1].split(":")[0])
    state, _ = load_checkpoint(str(out / "model" / "model_latest.pkl"))
    assert steps >= 3 and state["steps"] == steps and len(state["history"]) == steps
    assert all(np.isfinite(v).all() for v in state["model"].values())
    assert not [n for n in os.listdir(out / "model") if "partial" in n or ".tmp" in n]
    load_model(str(out / "model" / "model_latest.pkl"))
