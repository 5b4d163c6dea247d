"""infer --resume after a hard kill: a real run (subprocess) is killed with SIGKILL once a few PNGs exist, then
rerun with --resume; the result equals an uninterrupted run: the same PNGs pixel for pixel, the same metrics
in one summary, a complete video, and the frames finished before the kill are kept, not recomputed."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
from PIL import Image

from conftest import ROOT
from jittor_sbvsr import infer
from test_api import save_tiny
from test_infer import read_csv, tiny, write_frames  # noqa: F401  (tiny is a fixture)
from test_video_out import decoded

N = 10


def clip():
    """(HR, LR) of N random frames, LR 24x32 (the network only needs frames, not realism)."""
    rng = np.random.default_rng(3)
    hr = [rng.integers(0, 256, (96, 128, 3), dtype=np.uint8) for _ in range(N)]
    return hr, [f[::4, ::4].copy() for f in hr]


def finished_pngs(folder):
    """Frames written completely: PNGs that are not a writer's temporary."""
    return [p for p in os.listdir(folder) if p.endswith(".png") and ".partial-" not in p]


def test_resume_after_sigkill_equals_an_uninterrupted_run(tmp_path, tiny, capsys):  # noqa: F811
    hr, lr = clip()
    inp, gt = write_frames(tmp_path / "LR" / "v", lr), write_frames(tmp_path / "HR" / "v", hr)
    argv = [inp, "--gt", gt, "--model", save_tiny(tiny, tmp_path / "tiny.pkl"), "--output", str(tmp_path),
            "--border", "--save-video", "--quiet", "--cpu"]
    frames_dir, pid_file = tmp_path / "r" / "v", tmp_path / "pid"
    # through a shell: Jittor (imported here) quick-exits this process when one of its own children is
    # killed by a signal, so the killed run must be a grandchild
    proc = subprocess.Popen(["sh", "-c", '"$@" & echo $! > "$PID_FILE"; wait $!', "sh", sys.executable, "-m",
                             "jittor_sbvsr.infer"] + argv + ["--run-name", "r"], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=ROOT, PID_FILE=str(pid_file)))
    deadline = time.time() + 600
    while not (frames_dir.is_dir() and len(finished_pngs(frames_dir)) >= 3):
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read().decode()[-2000:]
        time.sleep(0.01)
    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    assert proc.wait() == 128 + signal.SIGKILL
    proc.stderr.close()
    # the kill may catch a frame being written: its temporary (x.partial-<id>.png) is not a kept frame
    kept = {p: os.stat(frames_dir / p).st_mtime_ns for p in finished_pngs(frames_dir)}
    assert 3 <= len(kept) < N and not (tmp_path / "r" / "v.mp4").exists()

    assert infer.main(argv + ["--run-name", "r", "--resume"]) == 0
    assert infer.main(argv + ["--run-name", "ref"]) == 0
    capsys.readouterr()
    names = [f"{i:08d}.png" for i in range(N)]
    assert sorted(p for p in os.listdir(frames_dir) if p.endswith(".png")) == names
    assert not [p for p in os.listdir(frames_dir) if ".partial-" in p]
    assert all(os.stat(frames_dir / p).st_mtime_ns == t for p, t in kept.items())  # kept, not rewritten
    for name in names:
        a = np.asarray(Image.open(frames_dir / name))
        assert np.array_equal(a, np.asarray(Image.open(tmp_path / "ref" / "v" / name))), name
    got, want = read_csv(tmp_path / "r" / "metrics.csv"), read_csv(tmp_path / "ref" / "metrics.csv")
    assert [(r["frame"], r["psnr"], r["ssim"]) for r in got] == [(r["frame"], r["psnr"], r["ssim"]) for r in want]
    s_got, s_want = (json.loads((tmp_path / run / "summary.json").read_text()) for run in ("r", "ref"))
    assert s_got["complete"] and s_got["total"]["frames"] == N
    assert s_got["total"]["psnr"] == s_want["total"]["psnr"] and s_got["total"]["ssim"] == s_want["total"]["ssim"]
    video, ref_video = decoded(str(tmp_path / "r" / "v.mp4")), decoded(str(tmp_path / "ref" / "v.mp4"))
    assert len(video) == N and all(np.array_equal(a, b) for a, b in zip(video, ref_video))
