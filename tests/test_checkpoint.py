"""Torch-free checkpoint reader (jittor_sbvsr.checkpoint), weight-file helpers (jittor_sbvsr.weights, numpy part)
and tools/convert_weights.py. Files are written by the real torch (test-only dependency) in both formats and
must read back bit-exactly; hostile or broken files must fail with one line naming the file."""
import hashlib
import os
import pickle
import random
import subprocess
import sys
import zipfile
from collections import OrderedDict

import numpy as np
import pytest
import torch

from conftest import ROOT, load_tool
from jittor_sbvsr.checkpoint import (CheckpointError, detect_format, load_checkpoint, read_state_dict)
from jittor_sbvsr.files import PARTIAL
from jittor_sbvsr.weights import (PWC_PREFIX, check_state, detect_kind, pwc_module_to_net_naming,
                                  pwc_net_to_module_naming, read_weights, reference_shapes)

CONVERT = os.path.join(ROOT, "tools", "convert_weights.py")
FORMATS = ["zip", "legacy"]
PWC_EXAMPLES = {  # later sniklaus naming -> 2018 naming used by upstream
    "netExtractor.netOne.0.weight": "moduleExtractor.moduleOne.0.weight",
    "netTwo.netUpflow.weight": "moduleTwo.moduleUpflow.weight",
    "netRefiner.netMain.0.weight": "moduleRefiner.moduleMain.0.weight",
    "netSix.netFiv.0.bias": "moduleSix.moduleFiv.0.bias",
}


def save(obj, path, fmt):
    torch.save(obj, str(path), _use_new_zipfile_serialization=(fmt == "zip"))
    return str(path)


def same(a, t):
    """Bit-exact equality of a numpy array with a torch tensor (dtype, shape, bytes)."""
    ref = t.detach().contiguous().numpy()
    return (isinstance(a, np.ndarray) and a.dtype == ref.dtype and a.shape == ref.shape
            and a.tobytes() == ref.tobytes())


def assert_same_state(state, ref):
    assert list(state) == list(ref)
    for k, t in ref.items():
        assert same(state[k], t), k


@pytest.fixture(scope="module")
def full_state():
    g = torch.Generator().manual_seed(0)
    return OrderedDict((k, torch.randn(*s, generator=g)) for k, s in reference_shapes("full").items())


@pytest.fixture(scope="module")
def pwc_state(full_state):
    return OrderedDict((k[len(PWC_PREFIX):], v) for k, v in full_state.items() if k.startswith(PWC_PREFIX))


@pytest.fixture(scope="module")
def files(tmp_path_factory, full_state, pwc_state):
    """The full checkpoint and PWC-Net file in both formats, written once for the module."""
    d = tmp_path_factory.mktemp("ckpt")
    out = {}
    for fmt in FORMATS:
        out["full", fmt] = save(full_state, d / f"full_{fmt}.pt", fmt)
        out["pwc", fmt] = save(pwc_state, d / f"network-default-{fmt}.pytorch", fmt)
        out["pwcnet", fmt] = save(OrderedDict((k.replace("module", "net"), v) for k, v in pwc_state.items()),
                                  d / f"pwc-net-naming-{fmt}.pt", fmt)
    return out


def run_convert(*args):
    """tools/convert_weights.py on this checkout's package (not an installed copy)."""
    return subprocess.run([sys.executable, CONVERT, *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, env=dict(os.environ, PYTHONPATH=ROOT))


def assert_one_line_error(proc, path):
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"convert_weights: error: {path}: "), lines[0]
    assert "Traceback" not in proc.stderr
    return lines[0]


def leftovers(folder):
    """Temporary files left in ``folder`` (``files.temp_name``'s ``.partial-`` names, or ``.tmp``)."""
    return sorted(n for n in os.listdir(folder) if n.endswith(".tmp") or PARTIAL in n)


# ------------------------------------------------------------------------------------------------ key table

def test_package_table():
    shapes = reference_shapes("full")
    assert len(shapes) == 272 and next(iter(shapes)) == "in_conv.0.weight"
    assert sum(int(np.prod(s)) for s in shapes.values()) == 18_900_215
    pwc = reference_shapes("pwc")
    assert len(pwc) == 126 and sum(int(np.prod(s)) for s in pwc.values()) == 9_374_274
    assert "moduleExtractor.moduleOne.0.weight" in pwc and "moduleRefiner.moduleMain.0.weight" in pwc


def test_pwc_name_map():
    for net, module in PWC_EXAMPLES.items():
        assert pwc_net_to_module_naming(net) == module
        assert pwc_module_to_net_naming(module) == net
    for key in reference_shapes("pwc"):
        net = key.replace("module", "net")  # how sniklaus' later code renames the 2018 file's keys
        assert pwc_module_to_net_naming(key) == net
        assert pwc_net_to_module_naming(net) == key
        assert pwc_net_to_module_naming(key) == key  # already in module naming: unchanged
    assert pwc_net_to_module_naming("flow_net.moduleNetwork.x") == "flow_net.moduleNetwork.x"
    assert pwc_net_to_module_naming("network.netted.weight") == "network.netted.weight"


def test_detect_kind():
    assert detect_kind(reference_shapes("full")) == "full"
    assert detect_kind(reference_shapes("pwc")) == "pwc"
    assert detect_kind({pwc_module_to_net_naming(k): v for k, v in reference_shapes("pwc").items()}) == "pwc"
    assert detect_kind({"conv.weight": 1}) == "full"


# ------------------------------------------------------------------------------------------- torch formats

@pytest.mark.parametrize("fmt", FORMATS)
def test_full_checkpoint_bit_exact(files, full_state, fmt):
    state, info = read_state_dict(files["full", fmt])
    assert info.format == {"zip": "torch-zip", "legacy": "torch-legacy"}[fmt]
    assert detect_format(files["full", fmt]) == info.format
    assert_same_state(state, full_state)
    assert check_state(state, "full").ok()
    assert all(v.flags.writeable and v.flags.c_contiguous for v in state.values())


@pytest.mark.parametrize("fmt", FORMATS)
def test_fp16_and_other_dtypes(tmp_path, full_state, fmt):
    half = OrderedDict((k, v.half()) for k, v in list(full_state.items())[:20])
    state, _ = read_state_dict(save(half, tmp_path / "half.pt", fmt))
    assert_same_state(state, half)
    assert all(v.dtype == np.float16 for v in state.values())
    g = torch.Generator().manual_seed(1)
    mixed = OrderedDict([
        ("f64", torch.randn(3, 4, dtype=torch.float64, generator=g)),
        ("i64", torch.randint(-2**62, 2**62, (5, 2), dtype=torch.int64, generator=g)),
        ("i32", torch.randint(-2**31, 2**31 - 1, (7,), dtype=torch.int32, generator=g)),
        ("i16", torch.arange(-5, 5, dtype=torch.int16)),
        ("i8", torch.arange(-5, 5, dtype=torch.int8)),
        ("u8", torch.arange(0, 250, 7, dtype=torch.uint8)),
        ("bool", torch.tensor([True, False, True])),
        ("scalar", torch.tensor(3.5)),
        ("empty", torch.zeros(0, 3)),
        ("num_batches_tracked", torch.tensor(7)),
    ])
    state, _ = read_state_dict(save(mixed, tmp_path / "mixed.pt", fmt))
    assert_same_state(state, mixed)
    bf = {"w": torch.randn(4, 3, generator=g).bfloat16()}
    state, _ = read_state_dict(save(bf, tmp_path / "bf16.pt", fmt))
    assert state["w"].dtype == np.float32 and same(state["w"], bf["w"].float())  # bf16 widened exactly


@pytest.mark.parametrize("fmt", FORMATS)
def test_views_into_one_shared_storage(tmp_path, fmt):
    big = torch.randn(1000, generator=torch.Generator().manual_seed(2))
    col = torch.randn(3, 1, generator=torch.Generator().manual_seed(3))
    shared = OrderedDict([
        ("whole", big),
        ("a", big[10:22].view(3, 4)),                    # contiguous, offset 10
        ("b_transposed", big[100:124].view(4, 6).t()),   # non-contiguous view, offset 100
        ("c_strided", big[200:300:3]),                   # stride 3
        ("d_4d", big[500:500 + 2 * 3 * 4 * 5].view(2, 3, 4, 5).permute(0, 2, 3, 1)),
        ("e_expanded", col.expand(3, 5)),                # stride 0
        ("a_again", big[10:22].view(3, 4)),
    ])
    path = save(shared, tmp_path / "shared.pt", fmt)
    if fmt == "zip":  # one storage record for all the views of `big` (+ one for col)
        with zipfile.ZipFile(path) as z:
            assert sum("/data/" in n and "/.data/" not in n for n in z.namelist()) == 2
    state, _ = read_state_dict(path)
    assert_same_state(state, shared)
    state["a"][0, 0] = 1e9  # views come back as independent arrays
    assert state["whole"][10] == big[10].item() and state["a_again"][0, 0] == big[10].item()


@pytest.mark.parametrize("fmt", FORMATS)
def test_parameters_and_module_state_dict(tmp_path, fmt):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ConvTranspose2d(4, 2, 4))
    params = OrderedDict(net.named_parameters())  # nn.Parameter objects: _rebuild_parameter
    state, _ = read_state_dict(save(params, tmp_path / "params.pt", fmt))
    assert_same_state(state, params)
    sd = net.state_dict()  # includes BatchNorm buffers (int64 num_batches_tracked) and _metadata
    state, _ = read_state_dict(save(sd, tmp_path / "sd.pt", fmt))
    assert_same_state(state, sd)


@pytest.mark.parametrize("fmt", FORMATS)
def test_module_prefix_is_stripped(tmp_path, full_state, fmt):
    sd = OrderedDict(("module." + k, v) for k, v in list(full_state.items())[:30])
    state, info = read_state_dict(save(sd, tmp_path / "dp.pt", fmt))
    assert info.stripped_prefix == "module."
    assert_same_state(state, OrderedDict(list(full_state.items())[:30]))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("wrapper", ["state_dict", "model", "net"])
def test_wrapped_state_dict(tmp_path, full_state, fmt, wrapper):
    sub = OrderedDict(list(full_state.items())[:10])
    obj = {"epoch": 12, "optimizer": {"lr": 1e-4, "state": {0: {"exp_avg": torch.ones(2)}}},
           "psnr_log": torch.arange(3, dtype=torch.float32), wrapper: sub, "note": "x"}
    state, info = read_state_dict(save(obj, tmp_path / "wrapped.pt", fmt))
    assert info.wrapper_key == wrapper
    assert_same_state(state, sub)
    whole, fmt_name = load_checkpoint(tmp_path / "wrapped.pt")
    assert whole["epoch"] == 12 and whole["note"] == "x"
    assert same(whole["optimizer"]["state"][0]["exp_avg"], torch.ones(2))


@pytest.mark.parametrize("fmt", FORMATS)
def test_storages_saved_on_cuda(tmp_path, full_state, fmt, monkeypatch):
    """Upstream files were saved from GPU tensors: the storage records say 'cuda:0'. Emulated by patching
    torch's location tag while saving (no GPU here); torch itself needs map_location to read the result."""
    import torch.serialization as ser
    sub = OrderedDict(list(full_state.items())[:8])
    monkeypatch.setattr(ser, "location_tag", lambda storage: "cuda:0")
    path = save(sub, tmp_path / "cuda.pt", fmt)
    monkeypatch.undo()
    raw = open(path, "rb").read()
    assert b"cuda:0" in (raw if fmt == "legacy" else zipfile.ZipFile(path).read("cuda/data.pkl"))
    state, _ = read_state_dict(path)
    assert_same_state(state, sub)
    assert_same_state(state, torch.load(path, map_location="cpu"))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("naming", ["module", "net"])
def test_pwc_file_both_namings(files, pwc_state, fmt, naming):
    path = files["pwc" if naming == "module" else "pwcnet", fmt]
    state, kind, info = read_weights(path)  # auto kind
    assert kind == "pwc" and info.meta["pwc_naming"] == naming
    assert_same_state(state, pwc_state)
    assert check_state(state, "pwc").ok()
    state2, kind2, _ = read_weights(path, kind="pwc")
    assert kind2 == "pwc" and list(state2) == list(pwc_state)


def test_reading_is_by_content_not_extension(tmp_path, files, full_state):
    for i, (key, name) in enumerate([(("full", "legacy"), "weights.txt"), (("full", "zip"), "weights"),
                                     (("pwc", "legacy"), "x.pkl")]):
        dst = tmp_path / name
        dst.write_bytes(open(files[key], "rb").read())
        state, info = read_state_dict(dst)
        assert info.format == "torch-" + key[1]
    pkl = tmp_path / "plain.pt"
    with open(pkl, "wb") as f:
        pickle.dump({"w": np.arange(6.0).reshape(2, 3)}, f)
    state, info = read_state_dict(pkl)
    assert info.format == "pickle" and np.array_equal(state["w"], np.arange(6.0).reshape(2, 3))


# ------------------------------------------------------------------------------------------- plain pickles

@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_trainer_checkpoint_pickle(tmp_path, full_state, protocol):
    sd = OrderedDict((k, v.numpy()) for k, v in full_state.items())
    rng = {"python": random.Random(4).getstate(), "numpy": np.random.RandomState(4).get_state()}  # as train.py
    ckpt = {"model": sd, "epoch": 3, "optimizer": {"step": np.int64(40), "m": [np.zeros(3, np.float32)]},
            "psnr_log": [30.5, 31.25], "best": (np.float64(31.25), 2), "rng": rng}
    path = tmp_path / "trainer_ckpt.pkl"
    with open(path, "wb") as f:
        pickle.dump(ckpt, f, protocol=protocol)
    state, info = read_state_dict(path)
    assert info.format == "pickle" and info.wrapper_key == "model"
    assert list(state) == list(sd) and all(np.array_equal(state[k], sd[k]) and state[k].dtype == sd[k].dtype
                                           for k in sd)
    whole, _ = load_checkpoint(path)
    assert whole["optimizer"]["step"] == 40 and whole["best"][1] == 2
    assert whole["rng"]["python"] == rng["python"] and whole["rng"]["numpy"][0] == "MT19937"
    assert all(np.array_equal(a, b) for a, b in zip(whole["rng"]["numpy"], rng["numpy"]))


# ------------------------------------------------------------------------------------------- hostile files

class _System:
    def __init__(self, cmd):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


class _Open:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        import builtins
        return (builtins.open, (self.path, "w"))


class _Eval:
    def __init__(self, code):
        self.code = code

    def __reduce__(self):
        import builtins
        return (builtins.eval, (self.code,))


def _hostile_files(tmp_path, marker):
    m = str(marker)
    out = {}
    for name, payload in [("system", _System(f"touch {m}")), ("open", _Open(m)),
                          ("eval", _Eval(f"open({m!r}, 'w')"))]:
        p = tmp_path / f"evil_{name}.pkl"
        with open(p, "wb") as f:
            pickle.dump({"w": np.zeros(2), "x": payload}, f, protocol=2)
        out[name, "pickle"] = p
    for fmt in FORMATS:
        out["system", fmt] = save({"w": torch.zeros(2), "x": _System(f"touch {m}")},
                                  tmp_path / f"evil_{fmt}.pt", fmt)
        out["open", fmt] = save(OrderedDict(w=torch.zeros(2), x=_Open(m)), tmp_path / f"evil_open_{fmt}.pt", fmt)
    return out


def test_malicious_pickles_are_refused_and_not_executed(tmp_path):
    marker = tmp_path / "PWNED"
    for (kind, fmt), path in _hostile_files(tmp_path, marker).items():
        with pytest.raises(CheckpointError) as e:
            read_state_dict(path)
        msg = str(e.value)
        assert msg.startswith(f"{path}: ") and "\n" not in msg
        assert "refused" in msg and {"system": "system", "open": "open", "eval": "eval"}[kind] in msg, msg
        assert not marker.exists(), f"{kind}/{fmt} executed code"
    assert not marker.exists()


def test_pickled_model_object_is_refused(tmp_path):
    path = save(torch.nn.Conv2d(3, 4, 3), tmp_path / "whole_model.pt", "zip")
    with pytest.raises(CheckpointError, match="refused.*torch.nn.modules.conv.Conv2d"):
        read_state_dict(path)


def _truncations(tmp_path, files):
    out = {}
    for fmt in FORMATS:
        data = open(files["full", fmt], "rb").read()
        for where, n in [("half", len(data) // 2), ("head", 300), ("last_byte", len(data) - 1)]:
            p = tmp_path / f"trunc_{fmt}_{where}.pt"
            p.write_bytes(data[:n])
            out[fmt, where] = p
    return out


def test_truncated_files(tmp_path, files):
    for (fmt, where), path in _truncations(tmp_path, files).items():
        with pytest.raises(CheckpointError) as e:
            read_state_dict(path)
        msg = str(e.value)
        assert msg.startswith(f"{path}: ") and "\n" not in msg
        assert "truncated" in msg, (fmt, where, msg)


def test_corrupt_zip_storage_fails_crc(tmp_path, files):
    data = bytearray(open(files["full", "zip"], "rb").read())
    data[len(data) // 2] ^= 0xFF
    path = tmp_path / "flipped.pt"
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="CRC"):
        read_state_dict(path)


def _junk_files(tmp_path):
    rnd = tmp_path / "random.pt"
    rnd.write_bytes(np.random.default_rng(5).integers(0, 256, 4096, dtype=np.uint8).tobytes()
                    .replace(b"\x80", b"\x81").replace(b"PK", b"pk"))
    rnd80 = tmp_path / "random80.pt"  # looks like a pickle for one byte
    rnd80.write_bytes(b"\x80" + np.random.default_rng(6).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    txt = tmp_path / "notes.pt"
    txt.write_text("These are not the weights you are looking for.\n" * 20)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    return {"random": rnd, "random80": rnd80, "text": txt, "empty": empty}


def test_not_a_checkpoint(tmp_path):
    expect = {"random": "not a PyTorch checkpoint", "random80": "corrupt", "text": "text file", "empty": "empty"}
    for name, path in _junk_files(tmp_path).items():
        with pytest.raises(CheckpointError) as e:
            read_state_dict(path)
        msg = str(e.value)
        assert msg.startswith(f"{path}: ") and "\n" not in msg and expect[name] in msg, msg
    with pytest.raises(CheckpointError, match="no such file"):
        read_state_dict(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="directory"):
        read_state_dict(tmp_path)
    with open(tmp_path / "list.pkl", "wb") as f:
        pickle.dump([1, 2, 3], f)
    with pytest.raises(CheckpointError, match="no state dict found"):
        read_state_dict(tmp_path / "list.pkl")


def test_reader_needs_neither_torch_nor_jittor(files, tmp_path):
    code = ("import sys; sys.modules['torch'] = None\n"  # torch unimportable, as on a user machine
            "import jittor_sbvsr.checkpoint as c, jittor_sbvsr.weights as w\n"
            f"s, kind, info = w.read_weights({files['full', 'legacy']!r})\n"
            f"p, kind2, _ = w.read_weights({files['pwcnet', 'zip']!r})\n"
            "assert len(s) == 272 and kind == 'full' and kind2 == 'pwc' and len(p) == 126\n"
            "assert 'jittor' not in sys.modules, 'reader imported jittor'\n"
            "print('ok')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


# ------------------------------------------------------------------------------------------- converter

@pytest.mark.parametrize("fmt", FORMATS)
def test_convert_full(tmp_path, files, full_state, fmt):
    src, out = files["full", fmt], tmp_path / "full.pkl"
    proc = run_convert(src, out)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert "272/272 matched" in proc.stdout and "18,900,215" in proc.stdout
    with open(out, "rb") as f:
        obj = pickle.load(f)  # a plain pickle: no torch, no project code needed
    assert set(obj) == {"state_dict", "meta"}
    assert_same_state(obj["state_dict"], full_state)
    meta = obj["meta"]
    assert meta["source_sha256"] == hashlib.sha256(open(src, "rb").read()).hexdigest()
    assert meta["source_format"] == "torch-" + fmt and meta["kind"] == "full"
    assert meta["key_count"] == 272 and meta["param_count"] == 18_900_215
    # the converted file reads back through the same loader, identically
    state, kind, info = read_weights(out)
    assert kind == "full" and info.format == "pickle" and info.meta["source_sha256"] == meta["source_sha256"]
    assert_same_state(state, full_state)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("naming", ["module", "net"])
def test_convert_pwc(tmp_path, files, pwc_state, naming):
    src = files["pwc" if naming == "module" else "pwcnet", "legacy" if naming == "module" else "zip"]
    out = tmp_path / "pwc.pkl"
    proc = run_convert(src, out, "--kind", "pwc")
    assert proc.returncode == 0, proc.stderr
    assert "126/126 matched" in proc.stdout and f"({naming}* naming)" in proc.stdout
    with open(out, "rb") as f:
        obj = pickle.load(f)
    assert_same_state(obj["state_dict"], pwc_state)  # always written in module* naming
    assert obj["meta"]["kind"] == "pwc" and obj["meta"]["pwc_naming"] == naming
    # the PWC file is not the full model
    out2 = tmp_path / "as_full.pkl"
    line = assert_one_line_error(run_convert(src, out2, "--kind", "full"), src)
    assert "does not match the full" in line and "126 unexpected" in line
    assert not out2.exists()


def test_convert_refuses_to_overwrite(tmp_path, files, full_state):
    out = tmp_path / "out.pkl"
    out.write_bytes(b"precious")
    line = assert_one_line_error(run_convert(files["pwc", "zip"], out), out)
    assert "already exists" in line and "--force" in line
    assert out.read_bytes() == b"precious"
    proc = run_convert(files["pwc", "zip"], out, "--force")
    assert proc.returncode == 0, proc.stderr
    with open(out, "rb") as f:
        assert len(pickle.load(f)["state_dict"]) == 126
    assert leftovers(tmp_path) == []


def test_convert_key_mismatches(tmp_path, full_state):
    bad = OrderedDict(full_state)
    bad["in_conv.0.weight"] = torch.zeros(64, 3, 3, 3)
    missing = OrderedDict(list(full_state.items())[:-2])
    extra = OrderedDict(full_state)
    extra["extra.weight"] = torch.zeros(1)
    wrong_model = {"conv1.weight": torch.zeros(8, 3, 3, 3), "fc.bias": torch.zeros(10)}
    cases = [(bad, "1 mis-shaped (in_conv.0.weight: [64, 3, 3, 3] vs [128, 3, 3, 3] expected)"),
             (missing, "2 missing (kernel_net.fc_net.1.weight, kernel_net.fc_net.1.bias)"),
             (extra, "1 unexpected (extra.weight)"),
             (wrong_model, "272 missing")]
    for i, (sd, expect) in enumerate(cases):
        src = save(sd, tmp_path / f"case{i}.pt", "zip")
        out = tmp_path / f"case{i}.pkl"
        line = assert_one_line_error(run_convert(src, out), src)
        assert expect in line, line
        assert not out.exists()
    # --allow-partial accepts missing keys only
    src, out = tmp_path / "case1.pt", tmp_path / "partial.pkl"
    proc = run_convert(src, out, "--allow-partial")
    assert proc.returncode == 0, proc.stderr
    assert "270/272 matched" in proc.stdout and "WARNING" in proc.stdout
    with open(out, "rb") as f:
        assert len(pickle.load(f)["state_dict"]) == 270
    line = assert_one_line_error(run_convert(tmp_path / "case0.pt", tmp_path / "p2.pkl", "--allow-partial"),
                                 tmp_path / "case0.pt")
    assert "mis-shaped" in line and not (tmp_path / "p2.pkl").exists()
    assert leftovers(tmp_path) == []


def test_convert_errors_on_bad_inputs(tmp_path, files):
    marker = tmp_path / "PWNED"
    bad = dict(_junk_files(tmp_path))
    bad.update({f"evil_{k}_{f}": p for (k, f), p in _hostile_files(tmp_path, marker).items()
                if k == "system" or f == "pickle"})
    bad.update({f"trunc_{f}_{w}": p for (f, w), p in _truncations(tmp_path, files).items() if w != "head"})
    bad["missing"] = tmp_path / "does_not_exist.pt"
    for name, src in bad.items():
        out = tmp_path / f"{name}.out.pkl"
        line = assert_one_line_error(run_convert(src, out), src)
        assert not out.exists(), name
        if name.startswith("evil"):
            assert "refused" in line
    assert not marker.exists()
    assert leftovers(tmp_path) == []


def test_convert_interrupted_write_leaves_nothing(tmp_path, files, monkeypatch):
    """An exception while writing (disk full, Ctrl-C) removes the temporary file and never creates OUT."""
    cw = load_tool("convert_weights")

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cw.pickle, "dump", boom)
    out = tmp_path / "x.pkl"
    assert cw.main([files["pwc", "legacy"], str(out)]) == 130
    assert not out.exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_memory_bombs_are_refused(tmp_path, fmt):
    """A tiny file must not make the reader allocate gigabytes: an expanded (stride-0) 4 GB tensor over a
    one-element storage, and a storage whose recorded size exceeds the file."""
    path = save({"w": torch.zeros(1).expand(10**9)}, tmp_path / "bomb.pt", fmt)
    with pytest.raises(CheckpointError, match="implausibly large"):
        read_state_dict(path)
    path = save({"w": torch.zeros(4)}, tmp_path / "size.pt", "legacy")
    data = bytearray(open(path, "rb").read())
    numel = (4).to_bytes(8, "little")  # the int64 numel before the storage bytes, at the end of the file
    at = len(data) - 16 - 8
    assert data[at:at + 8] == numel
    data[at:at + 8] = (10**12).to_bytes(8, "little")
    (tmp_path / "size.pt").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="holds|truncated"):
        read_state_dict(tmp_path / "size.pt")


def test_legacy_storage_views_as_torch_0_4_wrote_them(tmp_path):
    """torch < 1.0 could pickle storage *views* (view_metadata in the storage record), which torch 2.x never
    writes. Build such a file by hand, laid out as torch 0.4.1's legacy writer did (protocol 2, CUDA location,
    _rebuild_tensor_v2 with 6 arguments), and check it against torch.load."""
    root = np.random.default_rng(7).standard_normal(50).astype(np.float32)

    class Store:  # a storage: the root, or a view of it
        def __init__(self, view=None):
            self.view = view

    class Tensor:
        def __init__(self, store, offset, size, stride):
            self.args = (store, offset, size, stride, False, OrderedDict())

        def __reduce__(self):
            return (torch._utils._rebuild_tensor_v2, self.args)

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, Store):
                view = None if obj.view is None else ("140001", obj.view[0], obj.view[1])
                return ("storage", torch.FloatStorage, "140000", "cuda:0", root.size, view)
            return None

    whole, view = Store(), Store(view=(20, 12))  # view: elements 20..31 of the root
    obj = OrderedDict([("w", Tensor(whole, 0, (5, 10), (10, 1))),
                       ("v", Tensor(view, 0, (3, 4), (4, 1))),
                       ("vt", Tensor(view, 2, (3, 3), (1, 3)))])
    path = tmp_path / "torch041.pt"
    with open(path, "wb") as f:
        for header in (0x1950A86A20F9469CFC6C, 1001,
                       {"protocol_version": 1001, "little_endian": True,
                        "type_sizes": {"short": 2, "int": 4, "long": 8}}):
            pickle.dump(header, f, protocol=2)
        Pickler(f, protocol=2).dump(obj)
        pickle.dump(["140000"], f, protocol=2)
        f.write(np.int64(root.size).tobytes() + root.tobytes())
    ref = torch.load(path, map_location="cpu", weights_only=False)
    state, info = read_state_dict(path)
    assert info.format == "torch-legacy"
    assert_same_state(state, ref)
    assert np.array_equal(state["v"], root[20:32].reshape(3, 4))
    assert np.array_equal(state["vt"], np.lib.stride_tricks.as_strided(root[22:], (3, 3), (4, 12)))
