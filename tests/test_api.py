"""The embedding API (jittor_sbvsr.api.VideoSR): streaming with 2 frames of lookahead, the same outputs as the
CLI, video and folder outputs, weights by path."""
import os
import pickle

import numpy as np
import pytest
from PIL import Image

from jittor_sbvsr import ffmpeg
from jittor_sbvsr.api import VideoSR
from jittor_sbvsr.config import ModelConfig
from jittor_sbvsr.trainer.experiment import model_state
from test_infer import pan_clip, run_cli, tiny, write_frames  # noqa: F401  (tiny is a fixture)
from test_video_out import decoded, make_clip


def save_tiny(net, path):
    """``net`` (test_infer's tiny configuration) as a weights file that records its configuration."""
    config = ModelConfig(n_feat=16, extra_rbs=1, recons_rbs=1)
    with open(path, "wb") as f:
        pickle.dump({"model": model_state(net), "meta": {"model_config": config.to_dict()}}, f)
    return str(path)


def test_stream_reads_two_ahead_and_equals_the_cli(tmp_path, tiny, capsys):  # noqa: F811
    _, lr = pan_clip(6)
    pulled = []

    def frames():
        for i, f in enumerate(lr):
            pulled.append(i)
            yield f

    out = []
    for k, img in enumerate(VideoSR(tiny).stream(frames())):
        assert len(pulled) <= k + 3  # the window of frame k ends at k + 2
        out.append(img)
    assert len(out) == 6
    inp = write_frames(tmp_path / "v", lr)
    code, _, _ = run_cli([inp, "--output", tmp_path, "--run-name", "r", "--border", "--quiet"], tiny, capsys)
    assert code == 0
    for k, img in enumerate(out):
        assert np.array_equal(img, np.asarray(Image.open(tmp_path / "r" / "v" / f"{k:08d}.png"))), k
    assert len(list(VideoSR(tiny).stream(lr, border=False))) == 2


def test_run_to_video_and_to_folder_with_weights_file(tmp_path, tiny):  # noqa: F811
    sr = VideoSR(save_tiny(tiny, tmp_path / "tiny.pkl"), device="cpu")
    src = make_clip(str(tmp_path / "clip.mp4"), n=7)
    assert sr.run(src, str(tmp_path / "x4.mp4")) == 7
    assert ffmpeg.probe(str(tmp_path / "x4.mp4")).kinds() == ["Video", "Audio", "Subtitle"]
    assert len(decoded(str(tmp_path / "x4.mp4"))) == 7
    assert sr.run(src, str(tmp_path / "frames"), border=False) == 3
    assert sorted(os.listdir(tmp_path / "frames")) == [f"{i:08d}.png" for i in (2, 3, 4)]
    want = list(VideoSR(tiny).stream(decoded(src), border=False))[0]  # the same network, loaded from the file
    assert np.array_equal(np.asarray(Image.open(tmp_path / "frames" / "00000002.png")), want)


def test_bad_device_and_missing_weights(tmp_path, tiny, monkeypatch):  # noqa: F811
    with pytest.raises(ValueError, match="device must be"):
        VideoSR(tiny, device="tpu")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("jittor_sbvsr.default_weights.DEMO_WEIGHTS", str(tmp_path / "none.pkl"))
    with pytest.raises(FileNotFoundError, match="pass model="):
        VideoSR()
