"""What the inference tests share: a tiny seeded network, a short synthetic clip, and the CLI run in process."""
import os

import numpy as np
import pytest
from PIL import Image

from conftest import jt
from jittor_sbvsr import degrade, infer
from jittor_sbvsr.models import PWC_Recons

LR = (24, 32)


@pytest.fixture(scope="module")
def tiny():
    jt.set_global_seed(0)
    return PWC_Recons(n_feat=16, extra_RBS=1, recons_RBS=1)


def pan_clip(n=6, lr=LR):
    """(HR, LR) uint8 frames of a pan over a synthetic texture, degraded like the upstream test sets."""
    rng = np.random.default_rng(1)
    h, w = lr[0] * 4, lr[1] * 4
    coarse = rng.random((h // 8 + 4, w // 8 + 8, 3))
    scene = np.asarray(Image.fromarray((coarse * 255).astype(np.uint8)).resize(
        (coarse.shape[1] * 8, coarse.shape[0] * 8), Image.Resampling.BICUBIC))
    hr = [scene[i:i + h, 3 * i:3 * i + w].copy() for i in range(n)]
    return hr, [degrade.degrade_gaussian(f) for f in hr]


def write_frames(folder, frames, ext=".png"):
    os.makedirs(folder, exist_ok=True)
    for i, f in enumerate(frames):
        Image.fromarray(f).save(os.path.join(folder, f"{i:08d}{ext}"))
    return str(folder)


def run_cli(argv, model, capsys):
    code = infer.main([str(a) for a in argv], model=model)
    out, err = capsys.readouterr()
    return code, out, err


def write_tiny_weights(path):
    """A weights file of the tiny network's configuration (infer rebuilds it from the recorded config)."""
    import pickle

    from jittor_sbvsr.config import META_KEY, ModelConfig

    config = ModelConfig(n_feat=16, extra_rbs=1, recons_rbs=1)
    jt.set_global_seed(0)
    state = {k: v.numpy() for k, v in config.build().state_dict().items()}
    with open(path, "wb") as f:
        pickle.dump({"model": state, "meta": {META_KEY: config.to_dict()}}, f)
    return str(path)


def write_png16(path, img):
    """A 16-bit RGB or RGBA PNG (``img`` uint16 H x W x 3 or 4), written by hand: Pillow cannot write one."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in img)
    colour_type = {3: 2, 4: 6}[img.shape[2]]
    header = struct.pack(">IIBBBBB", img.shape[1], img.shape[0], 16, colour_type, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
                + chunk(b"IEND", b""))
