"""Bad inputs and unusual runs end with one line ``<path>: <problem>`` and exit status 2, before any work; odd
but usable inputs get a note. Covers infer (names, run folders, frames, videos, memory, disk), train and the
dataset tool. Everything runs in process on tiny inputs except the usage errors, which are cheap subprocesses
that stop before Jittor is imported."""
import json
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, load_tool
from infer_support import pan_clip, run_cli, tiny, write_frames, write_png16  # noqa: F401 (tiny is a fixture)
from jittor_sbvsr import engine, infer, run_folder, video_io
from jittor_sbvsr.data.train_set import BlurDownTrainSet
from synthetic_data import write_train_set
from test_train import TINY_CLI, error_line

make_blurdown_dataset = load_tool("make_blurdown_dataset")


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_png_header(path, w, h):
    """A PNG that claims w x h pixels but holds almost no data: its header is all Pillow reads on opening."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\0"))
                + png_chunk(b"IEND", b""))


def write_mp4(path, frames, fps=10, faststart=False):
    import imageio_ffmpeg

    params = ["-movflags", "+faststart"] if faststart else None
    writer = imageio_ffmpeg.write_frames(str(path), (frames[0].shape[1], frames[0].shape[0]), fps=fps,
                                         macro_block_size=1, output_params=params)
    writer.send(None)
    for f in frames:
        writer.send(f)
    writer.close()
    return str(path)


# ---- infer: refused before the model is loaded ---------------------------------------------------------------

def _refused(tmp_path):
    """name -> (argv, path named in the error, problem substring); the output goes to tmp_path/out unless
    the argv says otherwise."""
    _, lr = pan_clip(5)
    cases = {}
    collide = write_frames(tmp_path / "collide", lr)
    Image.fromarray(lr[0]).save(os.path.join(collide, "b.png"))
    Image.fromarray(lr[1]).save(os.path.join(collide, "b.jpg"))
    cases["b.png and b.jpg"] = ([collide], collide, "b.jpg and b.png would both be written as b; rename one")
    bomb = write_frames(tmp_path / "bomb", lr)
    write_png_header(os.path.join(bomb, "00000002.png"), 20000, 20000)
    cases["decompression bomb"] = ([bomb], os.path.join(bomb, "00000002.png"), "too large to decode (Image size "
                                                                                "(400000000 pixels) exceeds limit")
    corrupt = write_frames(tmp_path / "corrupt", lr)
    with open(os.path.join(corrupt, "00000004.png"), "r+b") as f:  # a valid header, damaged data
        f.seek(60)
        f.write(b"\xff" * 16)
    cases["corrupt last frame"] = ([corrupt], os.path.join(corrupt, "00000004.png"), "cannot read image")
    bad_video = tmp_path / "bad.mp4"
    bad_video.write_bytes(bytes(2000))
    cases["not a video"] = ([bad_video], bad_video, "; Error opening input files: Invalid data found when "
                                                    "processing input)")
    inp = write_frames(tmp_path / "v", lr)
    cases["output is the input"] = ([inp, "--output", tmp_path, "--run-name", "v"], tmp_path / "v",
                                    f"the output folder is the input {inp}")
    cases["output inside the input"] = ([inp, "--output", inp], os.path.join(inp, "r"),
                                        f"the output folder lies inside the input {inp}")
    nested = write_frames(tmp_path / "o" / "r" / "w", lr)
    cases["output around the input"] = ([nested, "--output", tmp_path / "o"], tmp_path / "o" / "r",
                                        f"the output folder contains the input {nested}")
    earlier = tmp_path / "out" / "old"
    earlier.mkdir(parents=True)
    (earlier / "metrics.csv").write_text("x")
    cases["earlier run"] = ([inp, "--run-name", "old"], earlier, "holds an earlier run (metrics.csv); pass "
                                                                 "--overwrite")
    cases["--model folder"] = ([inp, "--model", tmp_path], tmp_path, "is a folder; --model takes a weights file")
    cases["--resume without a run"] = ([inp, "--run-name", "never", "--resume"], tmp_path / "out" / "never",
                                       "no run to resume: this run folder does not exist")
    return cases


def test_infer_refuses_before_loading_the_model(tmp_path, capsys, monkeypatch):
    def never(*_args):
        raise AssertionError("the model was loaded before the inputs were checked")

    monkeypatch.setattr(infer, "build_model", never)
    weights = tmp_path / "w.pkl"
    weights.write_bytes(b"never read")
    for name, (argv, path, problem) in _refused(tmp_path).items():
        argv = ["--model", weights] + argv + (["--output", tmp_path / "out"] if "--output" not in argv else []) + (
            ["--run-name", "r"] if "--run-name" not in argv else [])
        code, _, err = run_cli(argv, None, capsys)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1, (name, err)
        assert lines[0].startswith(f"infer: error: {path}: ") and problem in lines[0], (name, lines[0])
        assert "ffmpeg version" not in lines[0], name


def test_infer_refuses_a_run_folder_in_use_by_another_process(tmp_path):
    _, lr = pan_clip(5)
    inp = write_frames(tmp_path / "v", lr)
    folder = tmp_path / "out" / "r"
    folder.mkdir(parents=True)
    weights = tmp_path / "w.pkl"
    weights.write_bytes(b"never read")
    holder = run_folder.lock(str(folder))  # this test process plays the first run
    try:
        proc = subprocess.run([sys.executable, "-m", "jittor_sbvsr.infer", inp, "--output", str(tmp_path / "out"),
                               "--run-name", "r", "--overwrite", "--model", str(weights)],
                              env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True, timeout=120)
    finally:
        holder.close()
    assert proc.returncode == 2
    assert proc.stderr == f"infer: error: {folder}: in use by another run (process {os.getpid()}); wait for it to " \
                          "finish or choose another --run-name\n"


@pytest.mark.parametrize("argv,problem", [
    (["--fps", "nan"], "argument --fps: not a frame rate in (0, 1000]: 'nan'"),
    (["--fps", "inf"], "argument --fps: not a frame rate in (0, 1000]: 'inf'"),
    (["--tile", "8", "--tile-overlap", "7"], "--tile must be >= 8 and --tile-overlap (default 16) in [0, tile/2]"),
    (["--tile", "24"], "--tile must be >= 8 and --tile-overlap (default 16) in [0, tile/2]"),
    (["--resume"], "--resume continues the run folder that --run-name names"),
])
def test_infer_usage_errors(tmp_path, argv, problem):
    proc = subprocess.run([sys.executable, "-m", "jittor_sbvsr.infer", str(tmp_path)] + argv, cwd=tmp_path,
                          env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.splitlines()[-1].startswith(f"infer: error: {problem}")


# ---- infer: names, run folders, memory, disk -----------------------------------------------------------------

def test_dotted_frame_names_keep_all_but_the_extension(tmp_path, tiny, capsys):
    _, lr = pan_clip(5)
    folder = tmp_path / "shot"
    folder.mkdir()
    for i, f in enumerate(lr):
        Image.fromarray(f).save(folder / f"shot.{i:04d}.png")
    code, _, _ = run_cli([folder, "--output", tmp_path, "--run-name", "r", "--border", "--quiet"], tiny, capsys)
    assert code == 0
    assert sorted(os.listdir(tmp_path / "r" / "shot")) == [f"shot.{i:04d}.png" for i in range(5)]


def test_default_run_names_never_share_a_folder(tmp_path, tiny, capsys, monkeypatch):
    _, lr = pan_clip(5)
    inp = write_frames(tmp_path / "v", lr)
    monkeypatch.setattr(infer.time, "strftime", lambda fmt, *when: "2026-01-01_00-00-00")  # both in the same second
    for _ in range(2):
        code, _, _ = run_cli([inp, "--output", tmp_path / "out", "--quiet"], tiny, capsys)
        assert code == 0
    runs = sorted(os.listdir(tmp_path / "out"))
    assert runs == ["infer_2026-01-01_00-00-00", "infer_2026-01-01_00-00-00_2"]
    for run in runs:
        summary = json.loads((tmp_path / "out" / run / "summary.json").read_text())
        assert summary["run"] == run and summary["total"]["frames"] == 1
    code, _, _ = run_cli([inp, "--output", tmp_path / "out", "--run-name", runs[0], "--overwrite", "--quiet"], tiny,
                         capsys)
    assert code == 0 and len(os.listdir(tmp_path / "out")) == 2


def test_out_of_memory_names_the_frame_size_and_a_tile(tmp_path, tiny, capsys, monkeypatch):
    _, lr = pan_clip(5)
    inp = write_frames(tmp_path / "v", lr)

    def oom(self, indices):
        raise RuntimeError("[f 1202 12:00:00.000 mkl_conv_op.cc:180] could not create a memory object")

    monkeypatch.setattr(engine.WindowEngine, "super_resolve", oom)
    code, _, err = run_cli([inp, "--output", tmp_path, "--run-name", "r", "--quiet"], tiny, capsys)
    assert code == 2 and err == f"infer: error: {inp}: out of memory super-resolving its 32x24 frames; process " \
                                "them in tiles, e.g. --tile 32\n"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full, a device that is always full")
def test_disk_full_while_writing_the_log(tmp_path, tiny, capsys, monkeypatch):
    _, lr = pan_clip(5)
    inp = write_frames(tmp_path / "v", lr)
    monkeypatch.setattr(infer.time, "strftime", lambda fmt, *when: "2026-01-01_00-00-00")
    log = tmp_path / "r" / "inference_log_2026-01-01_00-00-00.txt"
    log.parent.mkdir()
    log.symlink_to("/dev/full")
    code, _, err = run_cli([inp, "--output", tmp_path, "--run-name", "r", "--overwrite", "--quiet"], tiny, capsys)
    assert code == 2 and err == f"infer: error: {log}: No space left on device\n"


def test_truncated_video_is_noted(tmp_path, tiny, capsys):
    _, lr = pan_clip(12)
    whole = write_mp4(tmp_path / "whole.mp4", lr, faststart=True)  # index first: a cut file still opens
    data = open(whole, "rb").read()
    (tmp_path / "cut.mp4").write_bytes(data[:len(data) * 4 // 5])
    code, out, _ = run_cli([tmp_path / "cut.mp4", "--output", tmp_path, "--run-name", "r", "--border", "--quiet"],
                           tiny, capsys)
    n = len(os.listdir(tmp_path / "r" / "cut"))
    assert code == 0 and 0 < n < 12
    assert f"note: {tmp_path / 'cut.mp4'}: {n} frames decoded, its header announces 12: the file may be truncated" \
           in out


def test_notes_for_16_bit_alpha_and_exif_orientation(tmp_path):
    rgba = np.random.default_rng(0).integers(0, 65536, (6, 8, 4), dtype=np.uint16)
    write_png16(tmp_path / "rgba16.png", rgba)
    exif = Image.Exif()
    exif[video_io.EXIF_ORIENTATION] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray((rgba[..., :3] >> 8).astype(np.uint8)).save(tmp_path / "rotated.jpg", exif=exif)
    cases = {"rgba16.png": ("16-bit RGBA reduced to 8 bits by the image decoder (high byte); alpha channel dropped",
                            rgba[..., :3] >> 8),
             "rotated.jpg": ("EXIF orientation 6 ignored: the frame is used as stored", None)}
    for name, (note, want) in cases.items():
        img, got = video_io.read_image(str(tmp_path / name))
        assert img.shape == (6, 8, 3) and note in got, (name, got)  # not rotated
        assert want is None or np.array_equal(img, want), name


# ---- train ---------------------------------------------------------------------------------------------------

def _train_refusals(tmp_path):
    """name -> (argv, substring of the error line)."""
    cases = {}
    resume = tmp_path / "resume"
    (resume / "model").mkdir(parents=True)
    (resume / "model" / "model_latest.pkl").write_bytes(b"x")
    (resume / "config.json").write_text("{not json")
    cases["corrupt config.json"] = (["--resume", str(resume)], f"{resume / 'config.json'}: not valid JSON")
    no_model = tmp_path / "no_model"
    (no_model / "model").mkdir(parents=True)
    (no_model / "config.json").write_text("{}")
    from jittor_sbvsr.files import write_bytes
    from jittor_sbvsr.trainer.experiment import CHECKPOINT_FORMAT

    import pickle
    write_bytes(str(no_model / "model" / "model_latest.pkl"), pickle.dumps(
        {"format": CHECKPOINT_FORMAT, "optimizer": {}, "epoch": 1, "history": [], "rng": {}}))
    cases["checkpoint without model"] = (["--resume", str(no_model)], "training checkpoint without model")
    mixed = write_train_set(str(tmp_path / "mixed"), n_videos=1, n_frames=5, h=64, w=64)
    Image.fromarray(np.zeros((72, 64, 3), np.uint8)).save(os.path.join(mixed, "HR", "000", "00000003.png"))
    cases["mixed frame sizes"] = (["--data-train", mixed] + TINY_CLI, "frame size 64x72 differs from 64x64")
    corrupt = write_train_set(str(tmp_path / "corrupt"), n_videos=1, n_frames=5, h=64, w=64)
    with open(os.path.join(corrupt, "HR", "000", "00000001.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\nnot an image")
    cases["corrupt frame, default data workers"] = (["--data-train", corrupt] + TINY_CLI + ["--n-threads", "4"],
                                                    "00000001.png: cannot read image")
    return cases


def test_train_refuses_with_one_line(tmp_path, capsys):
    for name, (argv, problem) in _train_refusals(tmp_path).items():
        line = error_line(capsys, argv + ["--random-flow-init", "--experiment-dir", str(tmp_path / "exp")])
        assert problem in line, (name, line)


def test_train_data_worker_error_is_one_line(tmp_path, capsys):
    """Damaged pixel data behind a valid header is only found when a worker decodes it."""
    train = write_train_set(str(tmp_path / "train"), n_videos=1, n_frames=5, h=64, w=64)
    frame = os.path.join(train, "HR", "000", "00000002.png")
    data = open(frame, "rb").read()
    with open(frame, "wb") as f:
        f.write(data[:len(data) // 2])
    BlurDownTrainSet(train, patch_size=16, num_workers=0)  # the header is fine: nothing is found up front
    line = error_line(capsys, ["--data-train", train, "--random-flow-init", "--experiment-dir",
                               str(tmp_path / "exp")] + TINY_CLI + ["--n-threads", "2"])
    assert line.startswith(f"error: {frame}: cannot read image (image file is truncated")


# ---- the dataset tool ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("sigma", ["0", "-1", "nan", "1e9"])
def test_make_blurdown_dataset_refuses_bad_sigma(tmp_path, capsys, sigma):
    with pytest.raises(SystemExit) as exit_info:
        make_blurdown_dataset.main(["--hr", str(tmp_path), "--out", str(tmp_path / "out"), "--sigma", sigma])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(f"argument --sigma: must be in (0, 10] (got {sigma})")
    assert not os.path.exists(tmp_path / "out")


def test_make_blurdown_dataset_names(tmp_path):
    rng = np.random.default_rng(0)
    video = tmp_path / "hr" / "shot"
    video.mkdir(parents=True)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(video / f"shot.{i:04d}.png")
    make_blurdown_dataset.make_dataset(str(tmp_path / "hr"), str(tmp_path / "out"), echo=lambda _: None)
    assert sorted(os.listdir(tmp_path / "out" / "LR_blurdown_x4" / "shot")) == ["shot.0000.png", "shot.0001.png"]
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(video / "shot.0001.jpg")
    with pytest.raises(video_io.InputError, match="shot.0001.jpg and shot.0001.png would both be written as "
                                                  "shot.0001"):
        make_blurdown_dataset.make_dataset(str(tmp_path / "hr"), str(tmp_path / "out2"), echo=lambda _: None)
