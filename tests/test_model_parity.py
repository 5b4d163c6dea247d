"""Parity of the Jittor network with the independent PyTorch reference (tests/reference), same weights.

Tolerances (float32 on both sides, different accumulation orders in convolutions and matmuls):
* single operators (correlation, warps, blur_down, pooling): 1e-5 or tighter — a handful of float32 ulps;
* kernels from KernelNet: 1e-6 (they are softmax outputs of size ~1/169, so 1e-6 is ~1e-4 relative);
* whole-model images in [0, 1]: 1e-4. The warps' 0.999 mask thresholds can flip a pixel when a sample
  position lands within round-off of the threshold; the smooth test frames make that practically
  impossible, and a flip would show up as an outlier far above 1e-4, failing the test loudly.
"""
import numpy as np
import pytest
import torch

from conftest import jt, tsv_shapes
from jittor_sbvsr.losses import train_loss
from jittor_sbvsr.models import KernelNet, PWC_Recons, backward_warp, blur_down
from jittor_sbvsr.models.kernel_net import AdaptiveAvgPool2d
from jittor_sbvsr.models.pwc_net import Flow_PWC
from jittor_sbvsr.state_dict import expected_shapes, load_state_dict_strict
from reference import torch_sbvsr as ref

import cuda_ops

SMALL = dict(n_feat=32, extra_RBS=1, recons_RBS=2)


def jarr(a):
    return jt.array(np.ascontiguousarray(a, dtype=np.float32))


def tarr(a):
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def max_diff(j, t):
    return float(np.abs(j.numpy() - t.detach().numpy()).max())


def twin(ref_class, jt_class, **config):
    """A seeded PyTorch reference module and a Jittor module carrying the same weights."""
    torch.manual_seed(0)
    ref_module = ref_class(**config).eval()
    jt_module = jt_class(**config)
    load_state_dict_strict(jt_module, ref.state_dict_numpy(ref_module))
    return ref_module, jt_module


def smooth_clip(rng, batch, h, w, frames=5):
    """Frames [B, 5, 3, h, w] in [0, 1]: a smooth random scene panning ~1.5 px per frame."""
    coarse = rng.random((batch, 3, h // 4 + 4, w // 4 + 4)).astype(np.float32)
    big = torch.nn.functional.interpolate(torch.from_numpy(coarse), scale_factor=4, mode="bicubic",
                                          align_corners=False).clamp(0, 1).numpy()
    return np.stack([big[:, :, 2 * i // 2 + i: 2 * i // 2 + i + h, i + i // 2: i + i // 2 + w]
                     for i in range(frames)], axis=1)


def test_keys_shapes_and_parameter_count():
    shapes = expected_shapes(PWC_Recons())
    assert list(shapes.items()) == tsv_shapes()
    assert sum(int(np.prod(s)) for s in shapes.values()) == 18_900_215


@pytest.mark.parametrize("shape", [(2, 32, 7, 13), (1, 196, 3, 5)])
def test_correlation(rng, shape):
    a, b = rng.standard_normal(shape), rng.standard_normal(shape)
    assert max_diff(cuda_ops.correlation(jarr(a), jarr(b)), ref.correlation(tarr(a), tarr(b))) <= 1e-6


def test_feature_warp_and_mask(rng):
    x = rng.standard_normal((2, 8, 10, 12))
    flow = rng.uniform(-3, 3, (2, 2, 10, 12))
    out_j, mask_j = Flow_PWC.warp(jarr(x), jarr(flow))
    out_t, mask_t = ref.Flow_PWC().warp(tarr(x), tarr(flow))
    assert 0 < mask_t.mean() < 1  # both in- and out-of-image samples occur
    assert max_diff(mask_j, mask_t) == 0
    assert max_diff(out_j, out_t) <= 1e-5


def test_pwc_backward_warp(rng):
    x = rng.standard_normal((2, 16, 9, 11))
    flow = rng.uniform(-2, 2, (2, 2, 9, 11))
    assert max_diff(backward_warp(jarr(x), jarr(flow)), ref.backward_warp(tarr(x), tarr(flow))) <= 1e-5


def test_blur_down_batch_two(rng):
    x = rng.random((2, 3, 21, 30))
    k = rng.random((2, 1, 13, 13))
    k /= k.sum(axis=(2, 3), keepdims=True)
    out = blur_down(jarr(x), jarr(k), 4)
    assert tuple(out.shape) == (2, 3, 6, 8)
    assert max_diff(out, ref.blur_down(tarr(x), tarr(k), 4)) <= 1e-6


@pytest.mark.parametrize("size", [(160, 160), (180, 180), (37, 53)])
def test_adaptive_pool_torch_bins(rng, size):
    x = rng.standard_normal((2, 4) + size)
    want = torch.nn.AdaptiveAvgPool2d(13)(tarr(x))
    assert max_diff(AdaptiveAvgPool2d(13)(jarr(x)), want) <= 1e-6


def test_kernel_net(rng):
    net_t, net_j = twin(ref.KernelNet, KernelNet, in_c=15, ksize=13)
    x = rng.random((2, 15, 37, 53))
    kj, kt = net_j(jarr(x)), net_t(tarr(x))
    assert np.allclose(kj.numpy().sum(axis=(2, 3)), 1, atol=1e-5)
    assert max_diff(kj, kt) <= 1e-6


@pytest.mark.parametrize("size", [(36, 52), (64, 64)])
def test_flow_pwc(rng, size):
    flow_t, flow_j = twin(ref.Flow_PWC, Flow_PWC)
    clip = smooth_clip(rng, 2, *size)
    with torch.no_grad():
        want = flow_t.estimate_flow(tarr(clip[:, 2]), tarr(clip[:, 4]))
    got = flow_j.estimate_flow(jarr(clip[:, 2]), jarr(clip[:, 4]))
    scale = max(1.0, float(want.abs().max()))
    assert max_diff(got, want) <= 1e-4 * scale


@pytest.fixture(scope="module")
def small_models():
    return twin(ref.PWC_Recons, PWC_Recons, **SMALL)


@pytest.mark.parametrize("mode", ["infer", "val", "train"])
@pytest.mark.parametrize("batch,size", [(1, (36, 52)), (2, (64, 64)), (2, (36, 52))])
def test_whole_model_modes(small_models, rng, mode, batch, size):
    net_t, net_j = small_models
    clip = smooth_clip(rng, batch, *size)
    with torch.no_grad():
        want, _ = net_t({"x": tarr(clip), "mode": mode})
    with jt.no_grad():
        got, _ = net_j({"x": jarr(clip), "mode": mode})
    assert sorted(got) == sorted(want)
    for key in want:
        tol = 1e-6 if key == "est_kernel" else 1e-4
        assert max_diff(got[key], want[key]) <= tol, key


def test_full_config_infer(rng):
    net_t, net_j = twin(ref.PWC_Recons, PWC_Recons)
    clip = smooth_clip(rng, 1, 36, 52)
    with torch.no_grad():
        want, _ = net_t({"x": tarr(clip), "mode": "infer"})
    with jt.no_grad():
        got, _ = net_j({"x": jarr(clip), "mode": "infer"})
    assert max_diff(got["recons"], want["recons"]) <= 1e-4
    assert max_diff(got["est_kernel"], want["est_kernel"]) <= 1e-6


def test_train_gradients(small_models, rng):
    net_t, net_j = small_models
    clip = smooth_clip(rng, 2, 36, 52)
    loss_t, _ = ref.train_loss(net_t({"x": tarr(clip), "mode": "train"})[0])
    loss_j, _ = train_loss(net_j({"x": jarr(clip), "mode": "train"})[0])
    assert abs(loss_j.item() - loss_t.item()) <= 1e-5 * abs(loss_t.item())
    net_t.zero_grad()
    loss_t.backward()
    params_t = dict(net_t.named_parameters())
    params_j = net_j.state_dict()
    names = ["kernel_net.fc_net.1.weight", "kernel_net.in_conv.weight", "recons_net.1.conv2.weight",
             "in_conv.0.weight", "flow_net.moduleNetwork.moduleTwo.moduleSix.0.weight",
             "flow_net.moduleNetwork.moduleExtractor.moduleOne.0.weight"]
    grads_j = jt.grad(loss_j, [params_j[n] for n in names])
    for name, grad_j in zip(names, grads_j):
        g_t = params_t[name].grad.numpy()
        rel = np.linalg.norm(grad_j.numpy() - g_t) / np.linalg.norm(g_t)
        assert rel <= 1e-3, (name, rel)


@pytest.mark.skipif(not jt.has_cuda, reason="Jittor has no CUDA on this machine")
def test_gpu_infer_and_train_step_match_cpu(rng):
    """On a GPU machine: full-config 'infer' on CUDA equals the CPU result (cuDNN/cuBLAS accumulate in
    other orders, hence 1e-4), and one 'train' loss agrees to relative 1e-4."""
    _, net = twin(ref.PWC_Recons, PWC_Recons)
    clip = jarr(smooth_clip(rng, 1, 36, 52))
    outputs = {}
    for use_cuda in (0, 1):
        jt.flags.use_cuda = use_cuda
        try:
            with jt.no_grad():
                recons = net({"x": clip, "mode": "infer"})[0]["recons"].numpy()
            loss = train_loss(net({"x": clip, "mode": "train"})[0])[0].item()
        finally:
            jt.flags.use_cuda = 1
        outputs[use_cuda] = (recons, loss)
    assert np.abs(outputs[1][0] - outputs[0][0]).max() <= 1e-4
    assert abs(outputs[1][1] - outputs[0][1]) <= 1e-4 * abs(outputs[0][1])
