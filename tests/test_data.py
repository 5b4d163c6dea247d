"""Training data pipeline: kernels, the OpenCV/SciPy re-implementations, blur + decimation, crops, seeding."""
import math
import os

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import jt, load_tool  # noqa: F401  (jt: Jittor configured before the data modules import it)
from jittor_sbvsr.data import imgproc, kernels, train_set
from jittor_sbvsr.data.train_set import BlurDownTrainSet, augment
from jittor_sbvsr.data.val_set import HRLRValSet
from jittor_sbvsr.video_io import InputError
from reference import torch_sbvsr as ref
from synthetic_data import write_train_set, write_val_set

try:
    import cv2
except ImportError:
    cv2 = None
try:
    import scipy.ndimage as ndimage
except ImportError:
    ndimage = None

needs_cv2 = pytest.mark.skipif(cv2 is None, reason="OpenCV (cv2) not installed; it is only a test oracle")
needs_scipy = pytest.mark.skipif(ndimage is None, reason="SciPy not installed; it is only a test oracle")

APPENDIX_B = {0.4: 5, 0.5: 5, 0.6: 5, 0.7: 7, 0.8: 7, 0.9: 7, 1.0: 7, 1.1: 9, 1.2: 9, 1.3: 9, 1.4: 11, 1.5: 11,
              1.6: 11, 1.7: 13, 1.8: 13, 1.9: 13, 2.0: 13}


@pytest.fixture(scope="module")
def train_root(tmp_path_factory):
    return write_train_set(str(tmp_path_factory.mktemp("train")))


# ---------------------------------------------------------------------------------------------- kernels

def test_gaussian_kernels_sizes_sums_and_centre():
    assert kernels.GAUSSIAN_SIGMAS == tuple(APPENDIX_B)
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(200):
        k = kernels.random_gaussian_kernel(rng)
        seen.add(k.shape[0])
        assert k.shape[0] == k.shape[1] and abs(k.sum() - 1) < 1e-12 and (k >= 0).all()
        c = (k.shape[0] - 1) / 2
        assert np.allclose(imgproc.center_of_mass(k), (c, c), atol=1e-12)
    assert seen == {5, 7, 9, 11, 13}


def test_gaussian_kernel_sizes_follow_appendix_b():
    for sigma, size in APPENDIX_B.items():
        assert kernels.fspecial_gaussian(sigma).shape == (size, size), sigma


def test_realistic_kernels():
    rng = np.random.default_rng(0)
    centres = []
    for _ in range(20):
        k = kernels.random_realistic_kernel(rng)
        assert k.shape == (13, 13) and abs(k.sum() - 1) < 1e-12 and (k >= 0).all()
        centres.append(imgproc.center_of_mass(k))
    # upstream centres the 31x31 kernel between pixels (15.5), which lands near 6.2 after the 13x13 resize
    assert np.allclose(np.mean(centres, axis=0), 6.2, atol=0.1)


def test_unknown_kernel_type():
    with pytest.raises(ValueError, match="unknown kernel type 'motion'"):
        kernels.random_kernel("motion", np.random.default_rng(0))


# ------------------------------------------------------------------ numpy re-implementations vs originals

@needs_cv2
@pytest.mark.parametrize("shape,out", [((31, 31), (13, 13)), ((13, 20), (31, 7)), ((16, 16), (16, 16))])
def test_resize_cubic_matches_opencv(shape, out):
    img = np.random.default_rng(0).random(shape)
    want = cv2.resize(img, (out[1], out[0]), interpolation=cv2.INTER_CUBIC)
    assert np.abs(imgproc.resize_cubic(img, *out) - want).max() <= 1e-5


@needs_cv2
@pytest.mark.parametrize("kind", ["uint8-valued", "float", "saturating"])
def test_edge_mean_matches_opencv(kind):
    rng = np.random.default_rng(1)
    img = {"uint8-valued": np.round(rng.random((33, 40, 3)) * 255), "float": rng.random((33, 40, 3)) * 200,
           "saturating": np.round(rng.random((33, 40, 3)) * 3) * 120}[kind]
    gx, gy = cv2.Sobel(img, cv2.CV_16S, 1, 0), cv2.Sobel(img, cv2.CV_16S, 0, 1)
    want = np.mean(cv2.addWeighted(cv2.convertScaleAbs(gx), 0.5, cv2.convertScaleAbs(gy), 0.5, 0))
    assert abs(imgproc.edge_mean(img) - want) <= 1e-5


@needs_scipy
@pytest.mark.parametrize("shift", [(0.0, 0.0), (-1.0, 0.5), (1.37, -2.21), (-0.49, -0.51)])
def test_spline_shift_matches_scipy(shift):
    img = np.random.default_rng(2).random((31, 31))
    want = ndimage.shift(img, shift, order=3, mode="constant")
    assert np.abs(imgproc.spline_shift(img, shift) - want).max() <= 1e-10


@needs_scipy
def test_center_of_mass_matches_scipy():
    img = np.random.default_rng(3).random((31, 17))
    assert np.allclose(imgproc.center_of_mass(img), ndimage.center_of_mass(img), atol=1e-12)


def test_edge_mean_of_flat_and_textured_images():
    assert imgproc.edge_mean(np.full((20, 20, 3), 77.0)) == 0
    assert imgproc.edge_mean(np.indices((20, 20)).sum(0)[:, :, None] * 10.0) > 7


# -------------------------------------------------------------------------------- samples and layout

def blur_decimate_reference(hr, kernel, scale=4):
    """upstream-conventions §1 closed form: y[i, j] = sum K[u, v] x[clamp(s i + u - p), clamp(s j + v - p)]."""
    h, w = hr.shape[:2]
    k = kernel.shape[0]
    p = k // 2
    out = np.zeros((math.ceil(h / scale), math.ceil(w / scale), hr.shape[2]))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            rows = np.clip(scale * i + np.arange(k) - p, 0, h - 1)
            cols = np.clip(scale * j + np.arange(k) - p, 0, w - 1)
            out[i, j] = np.einsum("uv,uvc->c", kernel, hr[rows][:, cols])
    return out


@pytest.mark.parametrize("kind", ["gaussian", "realistic"])
def test_sample_is_blur_and_decimation_of_the_hr_window(tmp_path, kind):
    root = write_train_set(str(tmp_path), n_videos=1, n_frames=5, h=64, w=64)  # crop = whole frame
    ds = BlurDownTrainSet(root, kernel=kind, patch_size=16, augment=False, batch_size=1, num_workers=0,
                          test_every=1)
    lr, kernel = ds.sample(epoch=1, index=0)
    assert lr.shape == (5, 3, 16, 16) and lr.dtype == np.float32 and kernel.shape == (13, 13)
    assert abs(kernel.sum() - 1) < 1e-6
    hr = np.stack([ds.read(p) for p in ds.videos[0][1]])
    for f in range(5):
        want = blur_decimate_reference(hr[f], kernel.astype(np.float64)) / 255.0
        assert np.abs(lr[f].transpose(1, 2, 0) - want).max() <= 1e-5
    # the same operation as the model's blur_down (PyTorch reference), kernel shared by every frame
    x = torch.from_numpy(hr.transpose(0, 3, 1, 2).astype(np.float32) / 255)
    k = torch.from_numpy(np.repeat(kernel[None, None], 5, axis=0))
    assert np.abs(ref.blur_down(x, k, 4).numpy() - lr).max() <= 1e-5


def test_crop_avoids_flat_areas(train_root, monkeypatch):
    ds = BlurDownTrainSet(train_root, patch_size=8, batch_size=1, num_workers=0, test_every=1)
    frames = np.full((5, 96, 96, 3), 100.0)
    frames[:, :, 64:] = np.random.default_rng(0).integers(0, 255, (5, 96, 32, 3))  # only the right third has texture

    def flat_crops():
        return sum(imgproc.edge_mean(ds.crop(frames, np.random.default_rng(s))[2]) < 7 for s in range(60))

    with_rule = flat_crops()
    monkeypatch.setattr(train_set, "CROP_TRIES", 1)
    single_draw = flat_crops()
    assert single_draw >= 20 and with_rule <= single_draw / 4  # about (1/2)^5 of the crops stay flat


def test_augmentation_is_shared_by_the_frames():
    frame = np.random.default_rng(0).random((8, 8, 3))
    for seed in range(8):
        out = augment(np.stack([frame] * 5), np.random.default_rng(seed))
        assert all(np.array_equal(out[0], out[i]) for i in range(5))


def test_windows_and_first_frames_per_video(tmp_path):
    root = write_train_set(str(tmp_path), n_videos=2, n_frames=9, h=40, w=40)
    ds = BlurDownTrainSet(root, patch_size=8, n_frames_per_video=6, batch_size=2, num_workers=0, test_every=1)
    assert [len(f) for _, f in ds.videos] == [6, 6]
    assert ds.windows == [(0, 0), (0, 1), (1, 0), (1, 1)] and ds.total_len == 4
    big = BlurDownTrainSet(root, patch_size=8, n_frames_per_video=6, batch_size=2, num_workers=0, test_every=10)
    assert big.repeat == 5 and big.total_len == 20  # upstream: epoch of about test_every batches


# ----------------------------------------------------------------------------------------------- seeding

def epoch_batches(ds, epoch):
    ds.set_epoch(epoch)
    return [x.numpy() for x, _ in ds]


def test_seeding_reproducible_fresh_per_epoch_and_independent_of_workers(train_root):
    opts = dict(kernel="realistic", patch_size=8, batch_size=2, test_every=1, seed=5)
    single = BlurDownTrainSet(train_root, num_workers=0, **opts)
    first = epoch_batches(single, 1)
    assert all(np.array_equal(a, b) for a, b in zip(first, epoch_batches(single, 1)))
    assert not any(np.array_equal(a, b) for a, b in zip(first, epoch_batches(single, 2)))
    other_seed = BlurDownTrainSet(train_root, num_workers=0, **{**opts, "seed": 6})
    assert not any(np.array_equal(a, b) for a, b in zip(first, epoch_batches(other_seed, 1)))
    workers = BlurDownTrainSet(train_root, num_workers=2, **opts)
    for epoch in (1, 2):  # in epoch 2 the workers, which prefetch, must have restarted with the new order
        want, got = epoch_batches(single, epoch), epoch_batches(workers, epoch)
        assert len(got) == len(want)
        # two workers may deliver batches in another order; each is identical to a single-process batch
        assert all(any(np.array_equal(a, b) for b in want) for a in got)
    workers.terminate()


def test_samples_differ_within_a_batch(train_root):
    ds = BlurDownTrainSet(train_root, kernel="realistic", patch_size=8, batch_size=4, num_workers=0, test_every=1)
    ds.set_epoch(1)
    _, k = next(iter(ds))
    k = k.numpy()
    assert not np.allclose(k[0], k[1])  # one kernel per sample, not per batch


# ----------------------------------------------------------------------------------------------- errors

def test_missing_or_bad_folders(tmp_path):
    with pytest.raises(InputError, match="dataset folder not found"):
        BlurDownTrainSet(str(tmp_path / "nowhere"), num_workers=0)
    root = write_train_set(str(tmp_path / "short"), n_videos=1, n_frames=3, h=40, w=40)
    with pytest.raises(InputError, match="3 frames, fewer than the 5 of one input window"):
        BlurDownTrainSet(root, num_workers=0)
    root = write_train_set(str(tmp_path / "small"), n_videos=1, n_frames=5, h=40, w=40)
    with pytest.raises(InputError, match="frames are 40x40, smaller than the 64x64 HR crop .* lower --patch-size"):
        BlurDownTrainSet(root, patch_size=16, num_workers=0)


def test_validation_set(tmp_path):
    root = write_val_set(str(tmp_path / "val"), n_videos=2, n_frames=6)
    ds = HRLRValSet(root)
    assert ds.total_len == 4  # 2 windows per 6-frame video, no border padding
    lr, hr, name = ds[1]
    assert lr.shape == (5, 3, 16, 24) and hr.shape == (3, 64, 96) and name == "000/00000003"
    assert 0 <= lr.min() and lr.max() <= 1
    os.rename(os.path.join(root, "LR_blurdown_x4", "001"), os.path.join(root, "LR_blurdown_x4", "002"))
    with pytest.raises(InputError, match="differ"):
        HRLRValSet(root)
    with pytest.raises(InputError, match="LR_blurdown_x4"):
        HRLRValSet(str(tmp_path / "missing"))


# ------------------------------------------------------------------------------ test-set generator

def test_make_blurdown_dataset(tmp_path):
    make_dataset = load_tool("make_blurdown_dataset").make_dataset

    hr_root = write_train_set(str(tmp_path / "src"), n_videos=2, n_frames=5, h=30, w=41)
    out = str(tmp_path / "out")
    assert make_dataset(os.path.join(hr_root, "HR"), out, "gaussian", echo=lambda _: None) == 10
    kernel = np.load(os.path.join(out, "kernel", "000.npy"))
    assert kernel.shape == (9, 9) and abs(kernel.sum() - 1) < 1e-12
    hr = np.asarray(Image.open(os.path.join(out, "HR", "001", "00000003.png")))
    lr = np.asarray(Image.open(os.path.join(out, "LR_blurdown_x4", "001", "00000003.png")))
    assert hr.shape == (30, 41, 3) and lr.shape == (8, 11, 3) and lr.dtype == np.uint8
    want = np.round(np.clip(blur_decimate_reference(hr.astype(np.float64), kernel), 0, 255))
    assert np.abs(lr.astype(np.float64) - want).max() <= 1  # float32 rounding may flip a .5 case
    assert (lr.astype(np.float64) == want).mean() > 0.99
    assert HRLRValSet(out).total_len == 2
    realistic = str(tmp_path / "realistic")
    make_dataset(os.path.join(hr_root, "HR"), realistic, "realistic", seed=3, echo=lambda _: None)
    k0, k1 = (np.load(os.path.join(realistic, "kernel", f"{v}.npy")) for v in ("000", "001"))
    assert k0.shape == (13, 13) and not np.allclose(k0, k1)  # one kernel per video
