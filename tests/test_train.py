"""The trainer: optimizer groups and schedule, step-by-step agreement with the PyTorch reference, the command
line (templates, errors), a short run writing the experiment folder, and exact resume."""
import importlib.util
import json
import os
import pickle

import numpy as np
import pytest
import torch

from conftest import jt
from jittor_sbvsr.checkpoint import load_checkpoint
from jittor_sbvsr.files import PARTIAL
from jittor_sbvsr.losses import train_loss
from jittor_sbvsr.models import PWC_Recons
from jittor_sbvsr.state_dict import load_state_dict_strict
from jittor_sbvsr.train import main, run
from jittor_sbvsr.trainer import loop
from jittor_sbvsr.trainer.experiment import TrainingError
from jittor_sbvsr.trainer.loop import Trainer
from jittor_sbvsr.trainer.optim import GROUPS, lr_at_epoch, make_optimizer
from jittor_sbvsr.trainer.options import parse_args
from jittor_sbvsr.weights import load_weights
from reference import torch_sbvsr as ref
from synthetic_data import seeded_init, textured_video, write_train_set, write_val_set

TINY = dict(n_feat=16, extra_RBS=1, recons_RBS=1)
TINY_CLI = ["--n-feat", "16", "--extra-rbs", "1", "--recons-rbs", "1", "--patch-size", "16", "--batch-size", "2",
            "--test-every", "1", "--n-threads", "0", "--no-progress"]


def clips(seed, n, batch=2, size=16):
    """``n`` fixed training batches [batch, 5, 3, size, size] in [0, 1] (panning textured clips)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        frames = [textured_video(rng, 5, size, size) for _ in range(batch)]
        out.append(np.stack(frames).transpose(0, 1, 4, 2, 3).astype(np.float32) / 255)
    return out


# ------------------------------------------------------------------------------------- optimizer

def test_parameter_groups_and_learning_rates():
    opt = make_optimizer(PWC_Recons(**TINY), lr=1e-4, flow_lr=1e-6)
    assert [g["name"] for g in opt.param_groups] == list(GROUPS) == [
        "in_conv", "extra_feat", "fusion_conv", "recons_net", "upsample_layers", "out_conv", "kernel_net",
        "flow_net"]
    assert [g["lr"] for g in opt.param_groups] == [1e-4] * 7 + [1e-6]
    assert (opt.betas, opt.eps) == ((0.9, 0.999), 1e-8)
    assert opt.set_epoch(101) == 5e-5 and opt.param_groups[-1]["lr"] == 5e-7


def test_step_schedule():
    assert [lr_at_epoch(1e-4, e) for e in (1, 100, 101, 200, 201, 401, 500)] == \
        [1e-4, 1e-4, 5e-5, 5e-5, 2.5e-5, 6.25e-6, 6.25e-6]


def test_accumulation_weights():
    weights, updates = loop.accumulation_weights(n_samples=7, batch_size=2, accumulate=2)
    assert weights == [0.5, 0.5, 2 / 3, 1 / 3] and updates == [False, True, False, True]


def test_adam_counts_updates_not_backward_calls():
    """Two half-weighted backward passes then one update == one full backward pass and one update."""
    x = jt.array(clips(3, 1)[0])
    params = []
    for halves in (False, True):
        jt.set_global_seed(0)
        net = PWC_Recons(**TINY)
        opt = make_optimizer(net, lr=1e-3)
        if halves:
            loop.train_step(net, opt, x, weight=0.5, update=False)
            loop.train_step(net, opt, x, weight=0.5, update=True)
        else:
            loop.train_step(net, opt, x)
        params.append(net.state_dict()["in_conv.0.weight"].numpy())
    assert np.abs(params[0] - params[1]).max() <= 1e-7


# ------------------------------------------------------------------------ agreement with PyTorch

def torch_adam_041(groups):
    """torch.optim.Adam made to follow PyTorch 0.4.1's update (upstream's version, and Jittor's): 0.4.1 added
    eps to sqrt(v) before the bias correction, today's torch adds it after, so eps_t = eps / sqrt(1 - b2^t)
    is set before each step."""
    opt = torch.optim.Adam(groups, betas=(0.9, 0.999), eps=1e-8)

    def step(t):
        for g in opt.param_groups:
            g["eps"] = 1e-8 / np.sqrt(1 - 0.999 ** t)
        opt.step()

    return opt, step


def test_five_adam_steps_match_the_pytorch_reference():
    torch.manual_seed(0)
    net_t = ref.PWC_Recons(**TINY)
    net_j = PWC_Recons(**TINY)
    load_state_dict_strict(net_j, ref.state_dict_numpy(net_t))
    groups = [{"params": list(getattr(net_t, name).parameters()), "lr": 1e-6 if name == "flow_net" else 1e-4}
              for name in GROUPS]
    opt_t, step_t = torch_adam_041(groups)
    opt_j = make_optimizer(net_j, lr=1e-4, flow_lr=1e-6)
    for t, x in enumerate(clips(0, 5), start=1):
        loss_j, _ = loop.train_step(net_j, opt_j, jt.array(x))
        loss_t, _ = ref.train_loss(net_t({"x": torch.from_numpy(x), "mode": "train"})[0])
        opt_t.zero_grad()
        loss_t.backward()
        step_t(t)
        assert abs(loss_j - loss_t.item()) <= 1e-4 * abs(loss_t.item()), t
    final_t = ref.state_dict_numpy(net_t)
    diff = {k: float(np.abs(v.numpy() - final_t[k]).max()) for k, v in net_j.state_dict().items()}
    assert max(diff.values()) <= 1e-4, max(diff.items(), key=lambda kv: kv[1])
    moved = np.abs(final_t["kernel_net.fc_net.1.weight"] - ref.state_dict_numpy(ref.PWC_Recons(**TINY))[
        "kernel_net.fc_net.1.weight"]).max()
    assert moved > 1e-4  # the steps really changed the weights


# ---------------------------------------------------------------------------------- command line

def test_command_line_overrides_template():
    args = parse_args(["--template", "Self_Blind_VSR_Realistic", "--batch-size", "2", "--data-val", "none"])
    assert (args.kernel, args.save, args.batch_size, args.data_val) == ("realistic", "Self_Blind_VSR_Realistic", 2,
                                                                         None)
    assert parse_args(["--template", "Self_Blind_VSR_Realistic", "--kernel", "gaussian"]).kernel == "gaussian"
    gaussian = parse_args(["--template", "Self_Blind_VSR_Gaussian"])
    assert (gaussian.patch_size, gaussian.batch_size, gaussian.epochs, gaussian.lr, gaussian.lr_decay) == \
        (160, 8, 500, 1e-4, 100)
    assert gaussian.data_val == "dataset/REDS4_BlurDown_Gaussian"


def error_line(capsys, argv):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    return lines[0]


def test_clear_errors(tmp_path, capsys):
    line = error_line(capsys, ["--data-train", str(tmp_path / "none")] + TINY_CLI)
    assert "dataset folder not found" in line
    train = write_train_set(str(tmp_path / "train"), n_videos=1, n_frames=5, h=64, w=64)
    line = error_line(capsys, ["--data-train", train, "--pwc-weights", str(tmp_path / "pwc.pytorch"),
                               "--experiment-dir", str(tmp_path / "exp")] + TINY_CLI)
    assert "PWC-Net weights not found" in line and "--random-flow-init" in line
    assert not os.path.exists(tmp_path / "exp")
    line = error_line(capsys, ["--resume", str(tmp_path / "exp" / "nothing")])
    assert "config.json: not found" in line


def test_out_of_memory_names_the_options_to_lower(tmp_path, monkeypatch):
    train = write_train_set(str(tmp_path / "train"), n_videos=1, n_frames=5, h=64, w=64)
    args = parse_args(["--data-train", train, "--accumulate", "4"] + TINY_CLI)

    def fail(*_args, **_kwargs):
        raise RuntimeError("[f 1126 ...] CUDA error: out of memory")

    monkeypatch.setattr(loop, "train_step", fail)
    from jittor_sbvsr.train import build_data, train_config
    trainer = Trainer(train_config(args), PWC_Recons(**TINY), None, build_data(args)[0], None, None)
    with pytest.raises(TrainingError, match=r"out of memory at --batch-size 2 .*raise --accumulate .* = 8"):
        trainer.train_epoch(1)


# ------------------------------------------------------------------------ short runs and resume

@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run A: 2 epochs of 3 steps, validated. Run B: 1 epoch, then --resume for the second (not validated:
    validation changes no state, and skipping it keeps the test short). Same initial weights."""
    tmp = tmp_path_factory.mktemp("runs")
    train = write_train_set(str(tmp / "train"), n_videos=2, n_frames=7, h=72, w=80)
    val = write_val_set(str(tmp / "val"), n_videos=1, n_frames=6)
    init = str(tmp / "init.pkl")
    state = seeded_init(PWC_Recons(**TINY))
    with open(init, "wb") as f:
        pickle.dump({"model": state}, f)
    common = ["--data-train", train, "--pre-train", init, "--lr", "3e-4", "--experiment-dir", str(tmp)] + TINY_CLI
    a = run(common + ["--data-val", val, "--save", "a", "--epochs", "2"])
    b = run(common + ["--save", "b", "--epochs", "1", "--no-save-middle-models"])
    run(["--resume", b, "--epochs", "2"])
    return {"a": a, "b": b, "init": init, "train": train, "args": parse_args(common)}


def test_short_run_writes_the_experiment_folder(runs):
    a = runs["a"]
    names = set(os.listdir(a))
    assert {"config.json", "log.txt", "metrics.csv", "metrics.json", "model"} <= names
    if importlib.util.find_spec("matplotlib"):
        assert {"loss.png", "psnr.png"} <= names
    else:
        assert "matplotlib is not installed" in open(os.path.join(a, "log.txt")).read()
    assert sorted(os.listdir(os.path.join(a, "model"))) == ["model_1.pkl", "model_2.pkl", "model_best.pkl",
                                                             "model_latest.pkl"]
    assert not [n for _, _, files in os.walk(a) for n in files if PARTIAL in n]  # no temporaries anywhere
    config = json.load(open(os.path.join(a, "config.json")))
    assert config["patch_size"] == 16 and config["lr"] == 3e-4 and config["kernel"] == "gaussian"
    history = json.load(open(os.path.join(a, "metrics.json")))
    assert [r["epoch"] for r in history] == [1, 2]
    for row in history:
        assert all(np.isfinite(row[k]) for k in ("loss", "L1", "cycle", "cycle_psnr", "down_psnr", "psnr"))
    assert open(os.path.join(a, "metrics.csv")).readline().startswith("epoch,lr,loss,L1,cycle")
    log = open(os.path.join(a, "log.txt")).read()
    assert "Epoch   2 with Lr 3.00e-04" in log and "average Cycle-PSNR" in log
    # every checkpoint loads through the public weights loader
    net = PWC_Recons(**TINY)
    for name in ("model_latest", "model_best", "model_2"):
        assert load_weights(net, os.path.join(a, "model", f"{name}.pkl"))["kind"] == "full"


def test_short_run_lowers_the_training_loss(runs):
    from jittor_sbvsr.train import build_data

    data = build_data(runs["args"])[0]
    batches = [np.stack([data.sample(1, 2 * i)[0], data.sample(1, 2 * i + 1)[0]]) for i in range(3)]

    def loss_on_fixed_batches(weights):
        net = PWC_Recons(**TINY)
        load_weights(net, weights)
        with jt.no_grad():
            return np.mean([train_loss(net({"x": jt.array(x), "mode": "train"})[0])[0].item() for x in batches])

    before = loss_on_fixed_batches(runs["init"])
    after = loss_on_fixed_batches(os.path.join(runs["a"], "model", "model_latest.pkl"))
    assert after < 0.995 * before, (before, after)  # 0.2410 -> 0.2395 (0.6 % lower) after 6 steps


def test_resume_continues_exactly(runs):
    a, _ = load_checkpoint(os.path.join(runs["a"], "model", "model_latest.pkl"))
    b, _ = load_checkpoint(os.path.join(runs["b"], "model", "model_latest.pkl"))
    assert a["epoch"] == b["epoch"] == 2
    assert max(float(np.abs(a["model"][k] - b["model"][k]).max()) for k in a["model"]) <= 1e-6
    for ga, gb in zip(a["optimizer"]["groups"], b["optimizer"]["groups"]):
        assert ga["lr"] == gb["lr"]
        for x, y in zip(ga["v"], gb["v"]):  # float32 sums of squared gradients: round-off level
            assert np.allclose(x, y, rtol=1e-5, atol=1e-12)
    assert a["optimizer"]["updates"] == b["optimizer"]["updates"] == 6
    for ra, rb in zip(a["history"], b["history"]):
        assert ra["loss"] == pytest.approx(rb["loss"], rel=1e-6) and ra["L1"] == pytest.approx(rb["L1"], rel=1e-6)
    log = open(os.path.join(runs["b"], "log.txt")).read()
    assert "resumed" in log and log.count("Epoch   1 with") == 1 and log.count("Epoch   2 with") == 1
    assert os.listdir(os.path.join(runs["b"], "model")) == ["model_latest.pkl"]  # no validation, no best


def test_existing_experiment_is_not_overwritten(runs, capsys):
    line = error_line(capsys, ["--data-train", runs["train"], "--random-flow-init", "--experiment-dir",
                               os.path.dirname(runs["a"]), "--save", "a"] + TINY_CLI)
    assert "already holds a run" in line and "--resume" in line
