"""Self-checks of the PyTorch reference (tests/reference/torch_sbvsr.py) against the spec."""
from pathlib import Path

import numpy as np
import pytest
import torch

from reference import torch_sbvsr as ref

TSV = Path(__file__).resolve().parent.parent / "jittor_sbvsr" / "state_dict_keys.tsv"  # the spec table
SMALL = dict(extra_RBS=1, recons_RBS=1, n_feat=8)


def _tsv_entries():
    entries = []
    for line in TSV.read_text().splitlines():
        key, shape = line.split("\t")
        entries.append((key, [int(d) for d in shape.strip("[]").split(",")]))
    return entries


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    return ref.PWC_Recons(**SMALL).eval()


def test_full_config_state_dict_matches_tsv():
    model = ref.PWC_Recons()
    got = [(key, list(value.shape)) for key, value in model.state_dict().items()]
    assert got == _tsv_entries()
    assert sum(p.numel() for p in model.parameters()) == 18_900_215
    assert len(list(model.buffers())) == 0


def test_load_numpy_state_roundtrip_and_strictness(small_model):
    arrays = ref.state_dict_numpy(small_model)
    other = ref.PWC_Recons(**SMALL)
    ref.load_numpy_state(other, arrays)
    for key, value in other.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), arrays[key])
    with pytest.raises(ValueError, match="missing"):
        ref.load_numpy_state(other, {k: v for k, v in arrays.items() if k != "in_conv.0.bias"})
    with pytest.raises(ValueError, match="unexpected"):
        ref.load_numpy_state(other, dict(arrays, extra=np.zeros(1, np.float32)))
    with pytest.raises(ValueError, match="wrong_shape"):
        ref.load_numpy_state(other, dict(arrays, **{"in_conv.0.bias": np.zeros(3, np.float32)}))


def _numpy_correlation(first, second):
    b, c, h, w = first.shape
    padded = np.pad(second, ((0, 0), (0, 0), (4, 4), (4, 4)))
    out = np.zeros((b, 81, h, w))
    for dy in range(-4, 5):
        for dx in range(-4, 5):
            for y in range(h):
                for x in range(w):
                    out[:, (dy + 4) * 9 + dx + 4, y, x] = (
                        first[:, :, y, x] * padded[:, :, y + 4 + dy, x + 4 + dx]).sum(1) / c
    return out


def test_correlation_matches_numpy_loop():
    rng = np.random.default_rng(1)
    first = rng.standard_normal((2, 5, 7, 11))
    second = rng.standard_normal((2, 5, 7, 11))
    got = ref.correlation(torch.tensor(first, dtype=torch.float32), torch.tensor(second, dtype=torch.float32))
    np.testing.assert_allclose(got.double().numpy(), _numpy_correlation(first, second), atol=2e-6)


def test_correlation_shift_peaks_at_channel_51():
    torch.manual_seed(2)
    first = torch.randn(1, 32, 16, 20)
    second = torch.roll(first, shifts=(1, 2), dims=(2, 3))  # second[y+1, x+2] = first[y, x]
    peak = ref.correlation(first, second).argmax(dim=1)[0]
    assert (peak[4:-4, 4:-4] == 51).all()


def test_correlation_has_gradient_for_both_inputs():
    first = torch.randn(1, 4, 6, 6, requires_grad=True)
    second = torch.randn(1, 4, 6, 6, requires_grad=True)
    ref.correlation(first, second).sum().backward()
    assert first.grad.abs().sum() > 0 and second.grad.abs().sum() > 0


def test_backward_warp_zero_and_large_flow():
    torch.manual_seed(3)
    x = torch.randn(2, 4, 6, 9)
    np.testing.assert_allclose(ref.backward_warp(x, torch.zeros(2, 2, 6, 9)).numpy(), x.numpy(), atol=1e-6)
    assert (ref.backward_warp(x, torch.full((2, 2, 6, 9), 50.0)) == 0).all()


def test_backward_warp_integer_shift_masks_outside():
    x = torch.arange(30, dtype=torch.float32).view(1, 1, 5, 6)
    flow = torch.zeros(1, 2, 5, 6)
    flow[:, 0] = 1.0  # sample one pixel to the right
    out = ref.backward_warp(x, flow)[0, 0]
    np.testing.assert_allclose(out[:, :-1].numpy(), x[0, 0, :, 1:].numpy(), atol=1e-4)
    assert (out[:, -1] == 0).all()


def test_blur_down_delta_kernel_is_decimation():
    torch.manual_seed(4)
    x = torch.randn(3, 2, 17, 22)
    kernel = torch.zeros(3, 1, 13, 13)
    kernel[:, :, 6, 6] = 1.0
    out = ref.blur_down(x, kernel, 4)
    assert out.shape == (3, 2, 5, 6)
    np.testing.assert_array_equal(out.numpy(), x[..., ::4, ::4].numpy())


def test_blur_down_matches_closed_form():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 9, 10))
    kernel = rng.random((2, 1, 13, 13))
    got = ref.blur_down(torch.tensor(x, dtype=torch.float32), torch.tensor(kernel, dtype=torch.float32), 4)
    want = np.zeros((2, 3, 3, 3))
    for i in range(3):
        for j in range(3):
            for u in range(13):
                for v in range(13):
                    yy = min(max(4 * i + u - 6, 0), 8)
                    xx = min(max(4 * j + v - 6, 0), 9)
                    want[:, :, i, j] += kernel[:, 0, u, v, None] * x[:, :, yy, xx]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-5)


def test_flow_warp_zero_flow_identity_and_border():
    flow_net = ref.Flow_PWC()
    x = torch.randn(2, 3, 7, 10)
    out, mask = flow_net.warp(x, torch.zeros(2, 2, 7, 10))
    np.testing.assert_allclose(out.numpy(), x.numpy(), atol=1e-6)
    assert (mask == 1).all()
    flo = torch.zeros(2, 2, 7, 10)
    flo[:, 1] = -0.5  # half a pixel up: first row touches outside
    out, mask = flow_net.warp(x, flo)
    assert (mask[:, :, 0] == 0).all() and (mask[:, :, 1:] == 1).all()


def test_estimate_flow_shape(small_model):
    frames = torch.rand(2, 3, 36, 52)
    with torch.no_grad():
        flow = small_model.flow_net(frames, frames)
    assert flow.shape == (2, 2, 36, 52)


def test_modes_keys_and_shapes(small_model):
    torch.manual_seed(6)
    x = torch.rand(2, 5, 3, 36, 52)
    lr, hr, down = (2, 3, 36, 52), (2, 3, 144, 208), (2, 3, 9, 13)
    with torch.no_grad():
        out, mid = small_model({"x": x, "mode": "infer"})
        assert mid is None
        assert {k: tuple(v.shape) for k, v in out.items()} == {"recons": hr, "est_kernel": (2, 1, 13, 13)}
        out, _ = small_model({"x": x, "mode": "val"})
        assert {k: tuple(v.shape) for k, v in out.items()} == {
            "input": lr, "input_down": down, "input_cycle": lr, "recons": hr, "recons_down": lr,
            "est_kernel": (2, 1, 13, 13)}
        torch.testing.assert_close(out["input"], x[:, 2])
    out, _ = small_model({"x": x, "mode": "train"})
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "input": lr, "recons_down": lr, "input_cycle": lr, "est_kernel": (2, 1, 13, 13)}
    with pytest.raises(ValueError):
        small_model({"x": x, "mode": "test"})


def test_train_cycle_gradient_reaches_kernel_net_only(small_model):
    torch.manual_seed(7)
    small_model.zero_grad(set_to_none=True)
    out, _ = small_model({"x": torch.rand(1, 5, 3, 20, 24), "mode": "train"})
    total, terms = ref.train_loss(out)
    assert set(terms) == {"L1", "cycle", "boundaries", "sparse", "center"}
    expect = terms["L1"] + terms["cycle"] + 0.5 * terms["boundaries"] + 0.04 * terms["sparse"] + terms["center"]
    torch.testing.assert_close(total, expect)
    terms["cycle"].backward()
    assert all(p.grad is None for p in small_model.recons_net.parameters())
    assert all(p.grad is None for p in small_model.flow_net.parameters())
    assert small_model.kernel_net.fc_net[1].weight.grad.abs().sum() > 0


def test_kernel_softmax_sums_to_one():
    torch.manual_seed(8)
    net = ref.KernelNet()
    with torch.no_grad():
        k = net(torch.rand(3, 15, 30, 41))
    assert k.shape == (3, 1, 13, 13) and (k > 0).all()
    np.testing.assert_allclose(k.sum(dim=(1, 2, 3)).numpy(), np.ones(3), atol=1e-5)


def test_boundary_mask_appendix_a():
    m = ref.boundary_mask(13).numpy()
    np.testing.assert_allclose(m[0, 0], 5.75575, atol=1e-5)
    np.testing.assert_allclose(m[0, 6], 3.03099, atol=1e-5)
    np.testing.assert_allclose(m[1, 1], 4.12523, atol=1e-5)
    np.testing.assert_allclose(m[1, 6], 2.13886, atol=1e-5)
    np.testing.assert_allclose(m, m.T)
    np.testing.assert_allclose(m, m[::-1, ::-1])
    assert (m[2:11, 2:11] == 0).all() and (m[:2] > 0).all() and (m[:, :2] > 0).all()


def test_kernel_priors():
    k = torch.zeros(2, 1, 13, 13)
    k[0, 0, 6, 6] = 1.0
    k[1, 0, 6, 8] = 1.0
    torch.testing.assert_close(ref.kernel_center_loss(k), torch.tensor(1.0))  # (0 + (0+4)/2) / 2
    assert ref.kernel_boundary_loss(k) == 0
    edge = torch.zeros(1, 1, 13, 13)
    edge[0, 0, 0, 0] = 0.25
    torch.testing.assert_close(ref.kernel_boundary_loss(edge), torch.tensor(0.25 * 5.75575 / 169), atol=1e-6,
                               rtol=0)
    k.requires_grad_(True)
    sparse = ref.kernel_sparse_loss(k)
    torch.testing.assert_close(sparse, torch.tensor(2.0 / 338))
    sparse.backward()
    assert torch.isfinite(k.grad).all()
    assert k.grad[0, 0, 0, 0] == 0 and k.grad[0, 0, 6, 6] > 0
