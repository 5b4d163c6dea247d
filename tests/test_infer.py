"""The inference CLI (jittor_sbvsr.infer) and its parts: windows, the per-frame cache, tiling, I/O, errors.

A tiny seeded network (n_feat=16, 1+1 ResBlocks) on 24x32 LR frames keeps this file fast; the CLI runs in
process with the network passed to ``infer.main(argv, model=...)``, except two cheap subprocess runs that
fail before Jittor is imported.
"""
import csv
import json
import os
import pickle
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, jt, load_tool
from infer_support import LR, pan_clip, run_cli, tiny, write_frames, write_png16  # noqa: F401 (tiny is a fixture)
from jittor_sbvsr import default_weights, engine, infer, metrics, video_io
from jittor_sbvsr.models import PWC_Recons

def read_csv(path):
    with open(path, encoding="utf-8") as f:
        return list(csv.DictReader(f))


# ---- windows and tiles ---------------------------------------------------------------------------------

def gene_seq(n, border):
    """Upstream inference.py gene_seq on frame indices, verbatim logic."""
    seq = list(range(n))
    if border:
        seq = [seq[0], seq[1]] + seq + [seq[-2], seq[-1]]
    return [seq[i:i + 5] for i in range(len(seq) - 4)]


@pytest.mark.parametrize("n", range(2, 10))
@pytest.mark.parametrize("border", [False, True])
def test_window_indices_match_upstream(n, border):
    centres = range(n) if border else range(2, n - 2)
    assert [engine.window_indices(c, n, border) for c in centres] == gene_seq(n, border)


def test_window_indices_single_frame_and_invalid_centre():
    assert engine.window_indices(0, 1, True) == [0] * 5
    with pytest.raises(ValueError):
        engine.window_indices(1, 6, False)


@pytest.mark.parametrize("size,tile,overlap", [(24, 16, 4), (32, 16, 4), (100, 30, 8), (20, 32, 4), (17, 9, 0)])
def test_tile_spans_partition(size, tile, overlap):
    spans = engine.tile_spans(size, tile, overlap)
    kept = [p for s, e, k0, k1 in spans for p in range(k0, k1)]
    assert kept == list(range(size))
    for s, e, k0, k1 in spans:
        assert 0 <= s <= k0 < k1 <= e <= size and e - s == min(tile, size)


# ---- the cached engine is the naive computation, value for value ------------------------------------------

def test_engine_equals_naive_windows(tiny):
    _, lr = pan_clip(6)
    eng = engine.WindowEngine(tiny)
    eng.warm_up(lr[0], kernel=True)
    for c in range(6):
        idx = engine.window_indices(c, 6, True)
        for j in dict.fromkeys(idx):
            if not eng.has(j):
                eng.add(j, lr[j])
        got = eng.super_resolve(idx)
        want = engine.naive_window(tiny, [lr[j] for j in idx])
        assert got.shape == (3, 96, 128) and np.array_equal(got, want), c
        x = jt.concat([engine.to_tensor(lr[j]) for j in idx], dim=0).unsqueeze(0)
        with jt.no_grad():
            kernel = tiny({"x": x, "mode": "infer"})[0]["est_kernel"].numpy()[0, 0]
        assert np.array_equal(eng.kernel(idx), kernel)
        eng.release_below(c - 1)
        assert all(eng.has(j) for j in idx if j >= c - 1) and not eng.has(c - 2)



def test_restore_clip_asks_each_frame_once_and_equals_naive(tiny):
    _, lr = pan_clip(7)
    asked = []
    eng = engine.WindowEngine(tiny)
    got = eng.restore_clip(7, lambda j: asked.append(j) or lr[j])
    assert asked == list(range(7)) and not any(eng.has(j) for j in range(7))
    assert len(got) == 3
    for out, c in zip(got, range(2, 5)):
        assert np.array_equal(out, engine.naive_window(tiny, lr[c - 2:c + 3])), c

def test_tiles_are_stitched_from_per_tile_windows(tiny):
    _, lr = pan_clip(5)
    eng = engine.WindowEngine(tiny, tile=16, overlap=4)
    for j in range(5):
        eng.add(j, lr[j])
    out = eng.super_resolve(list(range(5)))
    for r0, r1, k0, k1 in engine.tile_spans(LR[0], 16, 4):
        for c0, c1, l0, l1 in engine.tile_spans(LR[1], 16, 4):
            want = engine.naive_window(tiny, [f[r0:r1, c0:c1] for f in lr])
            assert np.array_equal(out[:, 4 * k0:4 * k1, 4 * l0:4 * l1],
                                  want[:, 4 * (k0 - r0):4 * (k1 - r0), 4 * (l0 - c0):4 * (l1 - c0)])


def test_to_image_rounds_like_upstream():
    x = np.array([-0.1, 0.0, 0.5 / 255, 1.5 / 255, 0.5, 1.0, 1.2], np.float32)
    img = engine.to_image(np.stack([x, x, x]).reshape(3, 1, 7))
    assert img[0, :, 0].tolist() == [0, 0, 0, 2, 128, 255, 255]


# ---- the CLI ---------------------------------------------------------------------------------------------

def test_cli_frames_folder_with_gt(tmp_path, tiny, capsys):
    hr, lr = pan_clip(6)
    root = tmp_path / "données_数据"  # non-ASCII everywhere
    inp = write_frames(root / "LR" / "vidéo", lr)
    gt = write_frames(root / "HR" / "vidéo", hr)
    out = root / "résultats"
    code, stdout, stderr = run_cli([inp, "--gt", gt, "--output", out, "--run-name", "rün", "--border",
                                    "--log-every", 4], tiny, capsys)
    assert code == 0, stdout
    # stderr is not a terminal here: no bar, a plain progress line every 4 frames
    assert re.fullmatch(r"vidéo: 4/6 frames, [\d.]+ frames/s, ETA \d+:\d\d:\d\d\n", stderr), stderr
    run = out / "rün"
    pngs = sorted(os.listdir(run / "vidéo"))
    assert pngs == [f"{i:08d}.png" for i in range(6)]
    assert "border: on" in stdout and "device: jittor" in stdout
    rows = read_csv(run / "metrics.csv")
    assert [r["frame"] for r in rows] == [p[:-4] for p in pngs]
    for r, name in zip(rows, pngs):
        sr = np.asarray(Image.open(run / "vidéo" / name))
        p, s = metrics.evaluate(sr, hr[int(name[:-4])])
        assert abs(float(r["psnr"]) - p) < 1e-5 and abs(float(r["ssim"]) - s) < 1e-5
    # the CLI writes exactly the naive whole-network output
    idx = engine.window_indices(0, 6, True)
    naive = engine.to_image(engine.naive_window(tiny, [lr[j] for j in idx]))
    assert np.array_equal(np.asarray(Image.open(run / "vidéo" / pngs[0])), naive)
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    assert summary["complete"] and summary["border"] and summary["total"]["frames"] == 6
    assert abs(summary["total"]["psnr"] - np.mean([float(r["psnr"]) for r in rows])) < 1e-5
    assert f"AVG-PSNR={summary['total']['psnr']:.5f}" in stdout
    log = next(p for p in os.listdir(run) if p.startswith("inference_log_"))
    text = (run / log).read_text(encoding="utf-8")
    assert text.startswith("Inference - rün") and "> vidéo-00000000 PSNR=" in text


def test_cli_dataset_no_border_y_channel(tmp_path, tiny, capsys):
    hr, lr = pan_clip(6)
    for name in ("b", "a"):
        write_frames(tmp_path / "LR" / name, lr)
        write_frames(tmp_path / "HR" / name, hr)
    code, stdout, _ = run_cli([tmp_path / "LR", "--gt", tmp_path / "HR", "--output", tmp_path / "o", "--run-name",
                               "r", "--y-channel", "--tile", 16, "--tile-overlap", 4, "--quiet"], tiny, capsys)
    assert code == 0
    assert "first and last 2 frames of each video are not restored" in stdout and "tiles: 16x16" in stdout
    rows = read_csv(tmp_path / "o" / "r" / "metrics.csv")
    assert [(r["video"], r["frame"]) for r in rows] == [(v, f"{i:08d}") for v in "ab" for i in (2, 3)]
    sr = np.asarray(Image.open(tmp_path / "o" / "r" / "a" / "00000002.png"))
    assert abs(float(rows[0]["psnr"]) - metrics.evaluate(sr, hr[2], "y")[0]) < 1e-5
    summary = json.loads((tmp_path / "o" / "r" / "summary.json").read_text())
    assert summary["metrics"] == {"space": "y", "crop_border": 4} and set(summary["videos"]) == {"a", "b"}


def test_cli_video_file(tmp_path, tiny, capsys):
    import imageio_ffmpeg

    _, lr = pan_clip(4)
    path = str(tmp_path / "clip.mp4")
    writer = imageio_ffmpeg.write_frames(path, (LR[1], LR[0]), fps=12, macro_block_size=1)
    writer.send(None)
    for f in lr:
        writer.send(f)
    writer.close()
    code, stdout, _ = run_cli([path, "--output", tmp_path, "--run-name", "r", "--border", "--save-video",
                               "--save-kernel", "--no-images", "--quiet"], tiny, capsys)
    assert code == 0, stdout
    run = tmp_path / "r"
    assert sorted(os.listdir(run / "clip" / "kernels")) == sorted(
        f"{i:08d}{e}" for i in range(4) for e in (".npy", ".png"))
    kernel = np.load(run / "clip" / "kernels" / "00000001.npy")
    assert kernel.shape == (13, 13) and abs(kernel.sum() - 1) < 1e-4
    assert not [p for p in os.listdir(run / "clip") if p.endswith(".png")]
    meta = video_io.Video("out", str(run / "clip.mp4"))
    assert meta.rate() == 12 and sum(1 for _ in meta.frames()) == 4
    assert not [p for p in os.listdir(run) if ".partial" in p]


def test_cli_short_clip_needs_border(tmp_path, tiny, capsys):
    _, lr = pan_clip(3)
    inp = write_frames(tmp_path / "short", lr)
    code, _, err = run_cli([inp, "--output", tmp_path / "o"], tiny, capsys)
    assert code == 2 and err.startswith(f"infer: error: {inp}: 3 frame(s): without --border") and "--border" in err
    code, _, _ = run_cli([inp, "--output", tmp_path / "o", "--run-name", "r", "--border", "--quiet"], tiny, capsys)
    assert code == 0 and len(os.listdir(tmp_path / "o" / "r" / "short")) == 3


def test_cli_gt_a_few_pixels_off_is_cropped(tmp_path, tiny, capsys):
    hr, lr = pan_clip(5)
    inp = write_frames(tmp_path / "LR" / "v", lr)
    gt = write_frames(tmp_path / "HR" / "v", [f[:-3, :-1] for f in hr])  # HR 93x127, output 96x128
    code, stdout, _ = run_cli([inp, "--gt", gt, "--output", tmp_path, "--run-name", "r", "--quiet"], tiny, capsys)
    assert code == 0 and "both cropped to 127x93" in stdout
    sr = np.asarray(Image.open(tmp_path / "r" / "v" / "00000002.png"))
    assert sr.shape == (96, 128, 3)
    psnr = float(read_csv(tmp_path / "r" / "metrics.csv")[0]["psnr"])
    assert abs(psnr - metrics.evaluate(sr[:93, :127], hr[2][:93, :127])[0]) < 1e-5


def _bad_inputs(tmp_path):
    """name -> (argv, path named in the error, problem substring)."""
    hr, lr = pan_clip(5)
    cases = {}
    empty = tmp_path / "empty"
    empty.mkdir()
    cases["empty folder"] = ([empty], empty, "empty: no frames")
    mixed = write_frames(tmp_path / "mixed", lr)
    Image.fromarray(np.zeros((20, 32, 3), np.uint8)).save(os.path.join(mixed, "00000003.png"))
    cases["mixed sizes"] = ([mixed], os.path.join(mixed, "00000003.png"), "frame size 32x20 differs")
    corrupt = write_frames(tmp_path / "corrupt", lr)
    with open(os.path.join(corrupt, "00000002.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\nnot an image")
    cases["corrupt image"] = ([corrupt], os.path.join(corrupt, "00000002.png"), "cannot read image")
    inp = write_frames(tmp_path / "LR" / "v", lr)
    few = write_frames(tmp_path / "HR4" / "v", hr[:4])
    cases["GT count"] = ([inp, "--gt", few], few, "4 GT frames for 5 input frames")
    small = write_frames(tmp_path / "HRs" / "v", [f[:-4] for f in hr])
    cases["GT size"] = ([inp, "--gt", small], small, "must agree to within 3 pixels")
    write_frames(tmp_path / "HRn" / "w", hr)
    cases["GT names"] = ([tmp_path / "LR", "--gt", tmp_path / "HRn", "--output", tmp_path / "o2"],
                         tmp_path / "HRn", "no GT for video(s) v")
    cases["missing input"] = ([tmp_path / "nope"], tmp_path / "nope", "input not found")
    not_video = tmp_path / "notes.txt"
    not_video.write_text("x")
    cases["not a video"] = ([not_video], not_video, "not a video file")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cases["unwritable output"] = ([inp, "--output", blocker], blocker / "r", "output folder is not writable")
    return cases


def test_cli_bad_inputs(tmp_path, tiny, capsys):
    for name, (argv, path, problem) in _bad_inputs(tmp_path).items():
        argv = argv + (["--output", tmp_path / "out"] if "--output" not in argv else []) + ["--run-name", "r"]
        code, _, err = run_cli(argv, tiny, capsys)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1, (name, err)
        assert lines[0].startswith(f"infer: error: {path}: ") and problem in lines[0], (name, lines[0])


def test_cli_model_errors(tmp_path, capsys, monkeypatch):
    _, lr = pan_clip(5)
    inp = write_frames(tmp_path / "v", lr)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(default_weights, "DEMO_WEIGHTS", str(tmp_path / "no_demo_weights.pkl"))
    code, _, err = run_cli([inp], None, capsys)
    assert code == 2
    assert err.startswith("infer: error: pretrain_models/self_blind_vsr_gaussian.pkl: model file not found")
    assert "python tools/convert_weights.py pretrain_models/self_blind_vsr_gaussian.pt" in err
    code, _, err = run_cli([inp, "--model", "w.pkl"], None, capsys)
    assert code == 2 and err.startswith("infer: error: w.pkl: model file not found")
    small = {k: v.numpy() for k, v in PWC_Recons(n_feat=16, extra_RBS=1, recons_RBS=1).state_dict().items()}
    with open(tmp_path / "small.pkl", "wb") as f:
        pickle.dump(small, f)
    code, _, err = run_cli([inp, "--model", "small.pkl"], None, capsys)
    assert code == 2 and err.startswith("infer: error: small.pkl: ") and "do not match" in err
    small["in_conv.0.weight"][0, 0, 0, 0] = np.inf
    with open(tmp_path / "inf.pkl", "wb") as f:
        pickle.dump(small, f)
    code, _, err = run_cli([inp, "--model", "inf.pkl"], None, capsys)
    assert code == 2 and err == "infer: error: inf.pkl: key 'in_conv.0.weight' holds 1 non-finite values (NaN or " \
        "infinity), which would make every output black; allow_nonfinite=True (--allow-nonfinite) loads them anyway\n"
    code, _, err = run_cli([inp, "--model", "inf.pkl", "--allow-nonfinite"], None, capsys)
    assert code == 2 and err.startswith("infer: error: inf.pkl: ") and "do not match" in err


def test_frame_conversions(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    cases = {
        "gray.png": (Image.fromarray(rgb[..., 0]), "grayscale converted to RGB", np.repeat(rgb[..., :1], 3, 2)),
        "rgba.png": (Image.fromarray(np.dstack([rgb, rgb[..., :1]])), "alpha channel dropped", rgb),
        "g16.png": (Image.fromarray(rgb[..., 0].astype(np.uint16) * 257), "16-bit grayscale",
                    np.repeat(rgb[..., :1], 3, 2)),
        "pal.png": (Image.fromarray(rgb).convert("P"), "P image converted to RGB", None),
        "plain.bmp": (Image.fromarray(rgb), None, rgb),
    }
    write_png16(tmp_path / "rgb16.png", rgb.astype(np.uint16) * 257 + 3)
    cases["rgb16.png"] = (None, "16-bit RGB reduced to 8 bits", rgb)
    for name, (im, note, want) in cases.items():
        if im is not None:
            im.save(tmp_path / name)
        img, got_note = video_io.read_image(str(tmp_path / name))
        assert img.dtype == np.uint8 and img.shape == (6, 8, 3), name
        assert (got_note is None) if note is None else (note in got_note), (name, got_note)
        if want is not None:
            assert np.array_equal(img, want), name


def test_cli_notes_converted_frames(tmp_path, tiny, capsys):
    _, lr = pan_clip(5)
    inp = write_frames(tmp_path / "v", lr)
    Image.fromarray(lr[1][..., 0]).save(os.path.join(inp, "00000001.png"))
    code, stdout, _ = run_cli([inp, "--output", tmp_path, "--run-name", "r", "--quiet"], tiny, capsys)
    assert code == 0 and f"note: {os.path.join(inp, '00000001.png')}: grayscale converted to RGB" in stdout


def test_ctrl_c_leaves_complete_frames(tmp_path, tiny, capsys, monkeypatch):
    _, lr = pan_clip(6)
    inp = write_frames(tmp_path / "v", lr)
    calls = []
    real = engine.WindowEngine.super_resolve

    def interrupt_third(self, indices):
        if min(indices) >= 0:  # not the warm-up window (negative keys), which runs once per process
            calls.append(indices)
        if len(calls) == 3:  # frames 0 and 1, then Ctrl-C
            raise KeyboardInterrupt
        return real(self, indices)

    monkeypatch.setattr(engine.WindowEngine, "super_resolve", interrupt_third)
    code, _, err = run_cli([inp, "--output", tmp_path, "--run-name", "r", "--border", "--quiet"], tiny, capsys)
    assert code == 130 and "interrupted: 2 frame(s) written" in err
    assert sorted(os.listdir(tmp_path / "r" / "v")) == ["00000000.png", "00000001.png"]
    for name in os.listdir(tmp_path / "r" / "v"):
        assert np.asarray(Image.open(tmp_path / "r" / "v" / name)).shape == (96, 128, 3)
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["complete"] is False


def test_write_png_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "f.png"

    def broken_save(self, fp, *args, **kwargs):
        with open(fp, "wb") as f:
            f.write(b"\x89PNG partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        video_io.write_png(str(target), np.zeros((4, 4, 3), np.uint8))
    assert os.listdir(tmp_path) == []


def test_demo_untrained(tmp_path, tiny, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no pretrain_models/ here
    monkeypatch.setattr(default_weights, "DEMO_WEIGHTS", str(tmp_path / "no_demo_weights.pkl"))
    monkeypatch.setattr(infer, "build_model", lambda path, log, allow_nonfinite: tiny)
    code, stdout, _ = run_cli(["--demo", "--output", tmp_path, "--quiet"], None, capsys)
    lines = stdout.strip().splitlines()
    assert code == 0, stdout
    assert lines[0].startswith("demo:") and "UNTRAINED" in lines[0]
    assert lines[-1].startswith("demo: done") and "UNTRAINED" in lines[-1]
    assert any("bicubic PSNR=" in line for line in lines)
    assert sorted(os.listdir(tmp_path / "infer_demo" / "astronaut")) == [f"{i:08d}.png" for i in (2, 3, 4)]


def test_cli_subprocess_usage_errors(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, "-m", "jittor_sbvsr.infer", str(tmp_path / "missing")], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr == f"infer: error: {tmp_path / 'missing'}: input not found\n"
    proc = subprocess.run([sys.executable, "-m", "jittor_sbvsr.infer", "--demo", "--preset", "Gaussian_Vid4"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.splitlines()[-1].startswith("infer: error: give exactly one of")


def test_tile_diff_measures_tiled_against_untiled(tiny):
    tile_diff = load_tool("tile_diff")
    _, lr = pan_clip(n=5)
    untiled = tile_diff.super_resolve(engine.WindowEngine(tiny), lr)
    assert len(untiled) == 1 and untiled[0].shape == (96, 128, 3)
    assert tile_diff.compare(untiled, untiled) == (float("inf"), 0, 0.0)
    tiled = tile_diff.super_resolve(engine.WindowEngine(tiny, tile=16, overlap=4), lr)
    psnr, worst, share = tile_diff.compare(tiled, untiled)
    assert 0 < share <= 1 and worst > 0 and 20 < psnr < float("inf")  # per-tile flow changes some pixels


def test_tile_diff_short_clip_is_a_one_line_error(tmp_path):
    _, lr = pan_clip(n=3)
    write_frames(str(tmp_path / "lr"), lr)
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "tile_diff.py"), str(tmp_path / "lr")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    want = f"tile_diff: error: {tmp_path / 'lr'}: 3 frames; at least 5 are needed"
    assert proc.stderr.strip().splitlines()[-1] == want


def test_demo_runs_the_shipped_weights(tmp_path, capsys, monkeypatch):
    """Without upstream weights, --demo uses pretrain_models/sbvsr_demo_x4.pkl (its recorded n_feat-64
    configuration) and beats bicubic by at least 2 dB, as its card says (measured +2.35 dB)."""
    monkeypatch.chdir(tmp_path)  # no upstream weights here
    code, stdout, _ = run_cli(["--demo", "--output", tmp_path, "--quiet"], None, capsys)
    lines = stdout.strip().splitlines()
    assert code == 0, stdout
    assert "sbvsr_demo_x4.pkl" in lines[0] and "demo weights" in lines[0]
    assert any("n_feat 64, 3+10 ResBlocks" in line for line in lines)
    gain = float(lines[-1].split("done, ")[1].split(" dB")[0])
    assert gain >= 2.0, lines[-1]
