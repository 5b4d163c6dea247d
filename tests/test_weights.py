"""jittor_sbvsr.weights.load_weights into the Jittor model: the packaged key table equals the model, and a
PyTorch file loaded directly, its converted .pkl and a trainer-style checkpoint give identical parameters and
identical model outputs."""
import os
import pickle
import subprocess
import sys
from collections import OrderedDict

import numpy as np
import pytest
import torch

from conftest import ROOT, jt
from jittor_sbvsr.checkpoint import CheckpointError
from jittor_sbvsr.models import PWC_Recons
from jittor_sbvsr.state_dict import expected_shapes
from jittor_sbvsr.weights import PWC_PREFIX, load_weights, reference_shapes

CONVERT = os.path.join(ROOT, "tools", "convert_weights.py")


def params(module):
    return OrderedDict((k, v.numpy().copy()) for k, v in module.state_dict().items())


def bits_equal(a, b):
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """Small random weights (std 0.02, so activations stay finite through 20 ResBlocks) for the full model,
    written by torch in the legacy format (as the upstream 0.4.1 files are), converted, and as a trainer
    checkpoint; plus the PWC-Net subset in the later net* naming and an fp16 copy."""
    d = tmp_path_factory.mktemp("weights")
    g = torch.Generator().manual_seed(0)
    state = OrderedDict((k, torch.randn(*s, generator=g) * 0.02) for k, s in reference_shapes("full").items())
    files = {"pt": str(d / "self_blind_vsr_random.pt")}
    torch.save(state, files["pt"], _use_new_zipfile_serialization=False)
    files["pkl"] = str(d / "self_blind_vsr_random.pkl")
    proc = subprocess.run([sys.executable, CONVERT, files["pt"], files["pkl"]], capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 0, proc.stderr
    files["trainer"] = str(d / "model_latest.pkl")
    with open(files["trainer"], "wb") as f:
        pickle.dump({"model": OrderedDict((k, v.numpy()) for k, v in state.items()), "epoch": 7,
                     "optimizer": {"step": 100}}, f, protocol=5)
    files["pwc_net_naming"] = str(d / "pwc-net-naming.pt")
    torch.save(OrderedDict((k[len(PWC_PREFIX):].replace("module", "net"), v) for k, v in state.items()
                           if k.startswith(PWC_PREFIX)), files["pwc_net_naming"])
    files["fp16_dp"] = str(d / "fp16_dataparallel.pt")
    torch.save(OrderedDict(("module." + k, v.half()) for k, v in state.items()), files["fp16_dp"])
    return state, files


def test_packaged_table_equals_model_state_dict():
    model = PWC_Recons()
    assert list(expected_shapes(model).items()) == list(reference_shapes("full").items())
    assert list(expected_shapes(model.flow_net.moduleNetwork).items()) == list(reference_shapes("pwc").items())


def test_pt_and_converted_pkl_give_identical_outputs(weights):
    state, files = weights
    x = np.random.default_rng(0).random((1, 5, 3, 32, 32), dtype=np.float32)
    outputs = {}
    for name in ("pt", "pkl", "trainer"):
        model = PWC_Recons()
        info = load_weights(model, files[name])
        assert info["kind"] == "full" and info["keys"] == 272 and info["params"] == 18_900_215
        got = params(model)
        for k, t in state.items():
            assert bits_equal(got[k], t.numpy()), (name, k)
        if name == "trainer":
            continue
        with jt.no_grad():
            out, _ = model({"x": jt.array(x), "mode": "infer"})
        outputs[name] = {k: v.numpy() for k, v in out.items()}
        assert outputs[name]["recons"].shape == (1, 3, 128, 128)
        assert all(np.isfinite(v).all() for v in outputs[name].values())
    assert outputs["pt"].keys() == outputs["pkl"].keys()
    for k in outputs["pt"]:
        assert np.array_equal(outputs["pt"][k], outputs["pkl"][k]), k


def test_pwc_file_loads_into_flow_net_only(weights):
    state, files = weights
    model = PWC_Recons()
    before = params(model)
    info = load_weights(model, files["pwc_net_naming"])  # auto: 126 PWC-Net keys, net* naming
    assert info["kind"] == "pwc" and info["target"] == "flow_net.moduleNetwork" and info["keys"] == 126
    after = params(model)
    for k in after:
        if k.startswith(PWC_PREFIX):
            assert bits_equal(after[k], state[k].numpy()), k
        else:
            assert bits_equal(after[k], before[k]), k
    with pytest.raises(CheckpointError, match="do not match the model"):
        load_weights(model, files["pwc_net_naming"], kind="full")


def test_fp16_dataparallel_file_loads_as_float32(weights):
    state, files = weights
    model = PWC_Recons()
    load_weights(model, files["fp16_dp"])
    got = params(model)
    for k, t in state.items():
        assert got[k].dtype == np.float32 and bits_equal(got[k], t.half().float().numpy()), k


def test_mismatched_file_is_refused_and_model_untouched(weights, tmp_path):
    state, _ = weights
    bad = OrderedDict(state)
    bad["in_conv.0.weight"] = torch.zeros(64, 3, 3, 3)
    del bad["kernel_net.fc_net.1.bias"]
    path = str(tmp_path / "bad.pt")
    torch.save(bad, path)
    model = PWC_Recons()
    before = params(model)
    with pytest.raises(CheckpointError) as e:
        load_weights(model, path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: ") and "\n" not in msg
    assert "in_conv.0.weight" in msg and "kernel_net.fc_net.1.bias" in msg
    after = params(model)
    assert all(bits_equal(after[k], before[k]) for k in before)
    junk = tmp_path / "junk.pt"
    junk.write_text("not weights\n")
    with pytest.raises(CheckpointError, match="text file"):
        load_weights(model, junk)


class _ObjectArrayOverBytes:
    """Pickles as ``numpy.ndarray(shape, dtype('O8'), buffer=b'AAAA...')``: an object array whose pointers are
    the file's own bytes (reading it crashed the process in the float32 cast)."""

    def __init__(self, shape):
        self.shape = shape

    def __reduce__(self):
        return (np.ndarray, (self.shape, np.dtype("O8"), b"A" * 8 * int(np.prod(self.shape))))


def test_unusable_values_are_refused_naming_the_key(weights, tmp_path):
    """Each bad value in one correctly shaped key of a full state dict: one line naming the key (the forbidden
    ndarray call is refused before any key is read), the model untouched; NaN loads with allow_nonfinite."""
    state, _ = weights
    key = "in_conv.0.weight"
    shape = tuple(state[key].shape)
    nan = state[key].numpy().copy()
    nan[0, 0, 0, 0] = np.nan
    cases = [(_ObjectArrayOverBytes(shape), "refused to unpickle: the file calls numpy.ndarray"),
             (np.full(shape, None, dtype=object), f"key '{key}': numpy dtype 'O8' is not supported"),
             (np.ones(shape, np.complex64), f"key '{key}': numpy dtype 'c8' is not supported"),
             (np.full(shape, "0.5"), f"key '{key}': numpy dtype 'U3' is not supported"),
             (nan, f"key '{key}' holds 1 non-finite values")]
    model = PWC_Recons()
    before = params(model)
    path = str(tmp_path / "bad.pkl")
    for value, problem in cases:
        sd = OrderedDict((k, v.numpy()) for k, v in state.items())
        sd[key] = value
        with open(path, "wb") as f:
            pickle.dump(sd, f, protocol=4)
        with pytest.raises(CheckpointError) as e:
            load_weights(model, path)
        msg = str(e.value)
        assert msg.startswith(f"{path}: ") and "\n" not in msg and problem in msg, msg
        after = params(model)
        assert all(bits_equal(after[k], before[k]) for k in before)
    load_weights(model, path, allow_nonfinite=True)
    assert bits_equal(params(model)[key], nan)
