"""Hostile weights files against the restricted unpickler (jittor_sbvsr.restricted_pickle) and the checkpoint
reader built on it: each case must end in one CheckpointError line naming the file (exit status 2 from the
converter), never run anything from the file, never allocate much more than the file's size, never change the
loader for later files and never write anything. A seeded fuzz test mutates small valid checkpoints."""
import io
import os
import pickle
import random
import struct
import subprocess
import sys
import time
import tracemalloc
import zipfile
import zlib
from collections import OrderedDict

import numpy as np
import pytest
import torch

from conftest import ROOT
from jittor_sbvsr import checkpoint
from jittor_sbvsr.checkpoint import CheckpointError, load_checkpoint, read_state_dict
from jittor_sbvsr.restricted_pickle import MAX_DEPTH, Frozen
from test_checkpoint import CONVERT, assert_one_line_error, leftovers, run_convert, save

MIB = 1 << 20
PEAK_LIMIT = 96 * MIB  # a small hostile file may make the loader allocate at most 64 MiB + 4x its size

# ---------------------------------------------------------------------------------------------- raw opcodes


def pkl(*parts):
    """A protocol-3 pickle from raw opcode parts."""
    return b"\x80\x03" + b"".join(parts) + pickle.STOP


def glob(module, name):
    return pickle.GLOBAL + f"{module}\n{name}\n".encode()


def text(s):
    data = s.encode()
    return pickle.BINUNICODE + struct.pack("<I", len(data)) + data


def raw(data):
    return pickle.BINBYTES + struct.pack("<I", len(data)) + data


def num(n):
    return pickle.BININT + struct.pack("<i", n)


def call(func, *args):
    """func(*args): every part already pushes one value."""
    return func + pickle.MARK + b"".join(args) + pickle.TUPLE + pickle.REDUCE


def one_key(value, key="w"):
    return pickle.EMPTY_DICT + text(key) + value + pickle.SETITEM


def np_dtype(code, state=(3, "<", None, None, None, -1, -1, 0)):
    """numpy.dtype(code) with its BUILD state, as numpy pickles it."""
    parts = [num(v) if isinstance(v, int) else text(v) if isinstance(v, str) else pickle.NONE for v in state]
    return (call(glob("numpy", "dtype"), text(code), pickle.NEWFALSE, pickle.NEWTRUE)
            + pickle.MARK + b"".join(parts) + pickle.TUPLE + pickle.BUILD)


def np_array(shape, dtype, data):
    """numpy's own array pickle: _reconstruct(ndarray, (0,), b'b') + BUILD (1, shape, dtype, False, data)."""
    return (call(glob("numpy.core.multiarray", "_reconstruct"), glob("numpy", "ndarray"),
                 num(0) + pickle.TUPLE1, raw(b"b"))
            + pickle.MARK + num(1) + pickle.MARK + b"".join(num(n) for n in shape) + pickle.TUPLE + dtype
            + pickle.NEWFALSE + raw(data) + pickle.TUPLE + pickle.BUILD)


def nested_lists(depth):
    return pickle.EMPTY_LIST * depth + pickle.APPEND * (depth - 1)


def system(marker):
    return call(glob("os", "system"), text(f"touch {marker}"))


def amplified_encode(mib, times):
    """A list of ``times`` bytes objects, each _codecs.encode of the same memoised ``mib`` MiB string."""
    big = text("x" * (mib * MIB)) + pickle.BINPUT + b"\x00"
    encode = glob("_codecs", "encode") + pickle.BINPUT + b"\x01"
    again = pickle.BINGET + b"\x01" + pickle.BINGET + b"\x00" + pickle.TUPLE1 + pickle.REDUCE + pickle.APPEND
    return pickle.EMPTY_LIST + big + pickle.POP + encode + pickle.POP + again * times


def numpy_pickle(array, key="w"):
    return pickle.dumps({key: array}, protocol=2)


# name -> (file bytes, the error it must give)
HOSTILE = {
    # an object array over the file's own bytes: dereferencing b'AAAAAAAA' as a pointer crashed the process
    "object array in a set": (pkl(call(glob("builtins", "set"), call(
        glob("numpy", "ndarray"), num(1) + pickle.TUPLE1, np_dtype("O8", (3, "|", None, None, None, -1, -1, 63)),
        raw(b"A" * 8)))), "calls builtins.set"),
    "object array from numpy.ndarray()": (pkl(one_key(call(
        glob("numpy", "ndarray"), num(1) + pickle.TUPLE1, np_dtype("O8"), raw(b"A" * 8)))),
        "calls numpy.ndarray, which is not an allowed function"),
    "object array as numpy pickles it": (numpy_pickle(np.array([None, 1], dtype=object)),
                                         "key 'w': numpy dtype 'O8' is not supported"),
    "float code with object flags": (pkl(one_key(np_array((2,), np_dtype("f8", (3, "<", None, None, None, -1,
                                                                                  -1, 63)), b"A" * 16))),
                                     "key 'w': numpy dtype 'f8' is not supported"),
    "object dtype class": (pkl(one_key(call(glob("numpy.dtypes", "ObjectDType")))),
                           "calls numpy.dtypes.ObjectDType"),
    "string array": (numpy_pickle(np.array(["abc", "de"])), "key 'w': numpy dtype 'U3' is not supported"),
    "complex array": (numpy_pickle(np.ones(3, np.complex64)), "key 'w': numpy dtype 'c8' is not supported"),
    "structured array": (numpy_pickle(np.zeros(2, dtype=[("a", "<f4")])),
                         "key 'w': numpy dtype 'V4' is not supported"),
    "array shorter than its shape": (pkl(one_key(np_array((1000,), np_dtype("f4"), b"AAAA"))),
                                     "key 'w': numpy array of shape [1000] and dtype float32 needs 4,000 bytes but "
                                     "is built from 4"),
    "array with a huge shape": (pkl(one_key(np_array((10**6, 10**6), np_dtype("f4"), b"AAAA"))),
                                "needs 4,000,000,000,000 bytes but is built from 4"),
    "array state set twice": (pkl(one_key(np_array((1,), np_dtype("f4"), b"AAAA") + num(1) + pickle.TUPLE1
                                          + pickle.BUILD)), "state twice"),
    # allocations declared by the file
    "bytearray(1.5 GB)": (pkl(call(glob("builtins", "bytearray"), num(1_500_000_000))), "calls builtins.bytearray"),
    "BINBYTES8 of 1.5 GB": (pkl(pickle.BINBYTES8 + struct.pack("<Q", 1_500_000_000)), "truncated"),
    "BYTEARRAY8 of 1.5 GB": (pkl(pickle.BYTEARRAY8 + struct.pack("<Q", 1_500_000_000)), "truncated"),
    "FRAME of 1.5 GB": (pkl(pickle.FRAME + struct.pack("<Q", 1_500_000_000) + pickle.NONE), "truncated"),
    "string encoded 100 times": (pkl(amplified_encode(1, 100)), "implausibly large"),
    # nesting and cycles
    "lists nested 1.2 M deep": (pkl(nested_lists(1_200_000)), "nested more than|implausibly large"),
    "lists nested 100 deep": (pkl(nested_lists(100)), f"nested more than {MAX_DEPTH} levels"),
    "dict keyed by a tuple nested 1 M deep": (
        pkl(pickle.EMPTY_DICT + pickle.EMPTY_TUPLE + pickle.TUPLE1 * 1_000_000 + pickle.NONE + pickle.SETITEM),
        f"nested more than {MAX_DEPTH} levels"),
    "list appended to itself": (pkl(pickle.EMPTY_LIST + pickle.DUP + pickle.APPEND), "put inside itself"),
    "list changed after use": (pkl(pickle.EMPTY_LIST + pickle.BINPUT + b"\x00" + pickle.TUPLE1 + pickle.BINGET
                                   + b"\x00" + pickle.EMPTY_LIST + pickle.APPEND + pickle.POP),
                               "changed after it was put inside another one"),
    # stand-ins must stay as they are for the rest of the process
    "BUILD on the FloatStorage stand-in": (pkl(glob("torch", "FloatStorage") + one_key(np_dtype("f8"), "dtype")
                                               + pickle.BUILD), "sets the state of torch.FloatStorage"),
    "BUILD on the OrderedDict stand-in": (pkl(glob("collections", "OrderedDict") + pickle.EMPTY_DICT
                                              + pickle.BUILD), "sets the state of collections.OrderedDict"),
    "BUILD on a dtype twice": (pkl(np_dtype("f4") + pickle.NONE + pickle.BUILD), "dtype's state twice"),
    # object construction and containers a weights file never holds
    "NEWOBJ on an allowed class": (pkl(glob("collections", "OrderedDict") + pickle.EMPTY_TUPLE + pickle.NEWOBJ),
                                   "object construction"),
    "set literal": (pickle.dumps({"w": {1, 2}}, protocol=4), "uses a set"),
    "frozenset literal": (pickle.dumps({"w": frozenset([1])}, protocol=4), "uses a frozenset"),
    "extension code": (pkl(pickle.EXT1 + b"\x01"), "extension code"),
    "out-of-band buffer": (pickle.dumps(pickle.PickleBuffer(b"x"), protocol=5, buffer_callback=lambda b: False),
                           "out-of-band buffer"),
}


@pytest.fixture
def stand_ins():
    """The allow-list's stand-ins and their fields, to check that no file changed them."""
    def snapshot():
        return {key: (obj, [getattr(obj, s) for s in type(obj).__slots__]) if isinstance(obj, Frozen) else obj
                for key, obj in checkpoint._ALLOWED.items()}
    before = snapshot()
    yield
    assert snapshot() == before


def assert_refused(path, pattern):
    with pytest.raises(CheckpointError) as e:
        read_state_dict(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: ") and "\n" not in msg, msg
    assert any(p in msg for p in pattern.split("|")), msg
    return msg


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_pickle_is_refused(tmp_path, name, stand_ins):
    data, pattern = HOSTILE[name]
    path = tmp_path / "hostile.pkl"
    path.write_bytes(data)
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        assert_refused(path, pattern)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < PEAK_LIMIT, f"{name}: {peak / MIB:.0f} MiB"
    assert time.perf_counter() - t0 < 10
    assert sorted(os.listdir(tmp_path)) == ["hostile.pkl"]


def test_stand_ins_are_read_only(stand_ins):
    storage = checkpoint._ALLOWED["torch", "FloatStorage"]
    with pytest.raises(AttributeError):
        storage.dtype = np.dtype("f8")
    with pytest.raises(AttributeError):
        checkpoint._ALLOWED["collections", "OrderedDict"].fn = print
    assert not hasattr(storage, "__dict__")


def test_build_on_stand_in_leaves_later_files_alone(tmp_path, stand_ins):
    """The reported attack: BUILD {'dtype': float64} on FloatStorage, then an ordinary float32 file."""
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(HOSTILE["BUILD on the FloatStorage stand-in"][0])
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(evil)
    w = torch.arange(6, dtype=torch.float32)
    state, _ = read_state_dict(save({"w": w}, tmp_path / "after.pt", "zip"))
    assert state["w"].dtype == np.float32 and np.array_equal(state["w"], w.numpy())


def test_hostile_payload_is_not_executed(tmp_path):
    marker = tmp_path / "PWNED"
    for i, data in enumerate([pkl(system(marker)), pkl(one_key(system(marker))),
                              pkl(glob("builtins", "exec") + text(f"open({str(marker)!r}, 'w')") + pickle.TUPLE1
                                  + pickle.REDUCE)]):
        path = tmp_path / f"evil{i}.pkl"
        path.write_bytes(data)
        assert "refused" in assert_refused(path, "refused")
    assert not marker.exists()


# --------------------------------------------------------------------------------------------- zip archives

def storage_zip(path, numel, keys=("0",), written=None, compress=zipfile.ZIP_DEFLATED, pkl_tail=b"",
                record_bytes=None):
    """A torch zip checkpoint with one float32 tensor of ``numel`` zeros per storage key; records (zeros,
    ``record_bytes`` each, default 4 x numel) are written for the keys in ``written`` (default all), deflated
    unless ``compress`` says otherwise; ``pkl_tail`` is appended to data.pkl."""
    class Store:
        def __init__(self, key):
            self.key = key

    class Tensor:
        def __init__(self, store):
            self.args = (store, 0, (numel,), (1,), False, OrderedDict())

        def __reduce__(self):
            return (torch._utils._rebuild_tensor_v2, self.args)

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            return ("storage", torch.FloatStorage, obj.key, "cpu", numel) if isinstance(obj, Store) else None

    buf = io.BytesIO()
    Pickler(buf, protocol=2).dump(OrderedDict((f"w{k}", Tensor(Store(k))) for k in keys))
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", buf.getvalue() + pkl_tail, compress_type=zipfile.ZIP_DEFLATED)
        for key in keys if written is None else written:
            info = zipfile.ZipInfo(f"archive/data/{key}")
            info.compress_type = compress
            size = 4 * numel if record_bytes is None else record_bytes
            with z.open(info, "w") as m:
                for at in range(0, size, 16 * MIB):
                    m.write(bytes(min(16 * MIB, size - at)))
    return path


def patch_last_member(path, crc=None, file_size=None, copies=0):
    """Rewrite the last member's CRC and declared size in its local header and central entry, and add
    ``copies`` central entries pointing at the same bytes (names ending 001, 002, ...), as a hostile archive
    could; the end record is fixed up."""
    data = bytearray(open(path, "rb").read())
    eocd = data.rindex(b"PK\x05\x06")
    count, cd_size, cd_offset = struct.unpack("<HII", data[eocd + 10:eocd + 20])
    entry_at = data.rindex(b"PK\x01\x02", cd_offset, cd_offset + cd_size)
    header_at = struct.unpack("<I", data[entry_at + 42:entry_at + 46])[0]
    for crc_at in (entry_at + 16, header_at + 14):
        if crc is not None:
            data[crc_at:crc_at + 4] = struct.pack("<I", crc)
        if file_size is not None:
            data[crc_at + 8:crc_at + 12] = struct.pack("<I", file_size)
    entry = bytes(data[entry_at:cd_offset + cd_size])
    name = entry[46:46 + struct.unpack("<H", entry[28:30])[0]]
    extra = b"".join(entry.replace(name, name[:-3] + b"%03d" % i) for i in range(1, copies + 1))
    end = bytearray(data[eocd:])
    end[8:16] = struct.pack("<HHI", count + copies, count + copies, cd_size + len(extra))
    open(path, "wb").write(bytes(data[:eocd]) + extra + bytes(end))


@pytest.mark.parametrize("case", ["deflated storage", "deflated data.pkl", "shared record"])
def test_zip_bombs_are_refused_before_inflating(tmp_path, case, stand_ins):
    """A small archive whose records inflate (or repeat) to far more than the file: refused by size before the
    bytes are inflated or allocated. Before: a 1.5 MB file reached 3.4 GB RSS."""
    path = tmp_path / "bomb.pt"
    if case == "deflated storage":  # 128 MiB of zeros in ~130 kB
        storage_zip(path, 32 * MIB)
    elif case == "deflated data.pkl":
        storage_zip(path, 4, pkl_tail=bytes(128 * MIB))
    else:  # 101 storage records of 1 MiB, all read from the one stored member 000
        keys = [f"{i:03d}" for i in range(101)]
        storage_zip(path, MIB // 4, keys=keys, written=keys[:1], compress=zipfile.ZIP_STORED)
        patch_last_member(path, copies=100)
    assert os.path.getsize(path) < 2 * MIB
    tracemalloc.start()
    try:
        msg = assert_refused(path, "implausibly large")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < PEAK_LIMIT, f"{case}: {peak / MIB:.0f} MiB ({msg})"


def test_zip_record_inflates_only_to_its_declared_size(tmp_path):
    """A 16-byte record whose deflate stream holds 128 MiB: only the declared 16 bytes are ever inflated."""
    path = storage_zip(tmp_path / "lying.pt", 4, record_bytes=128 * MIB)
    patch_last_member(path, crc=zlib.crc32(bytes(16)), file_size=16)
    tracemalloc.start()
    try:
        state, _ = read_state_dict(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert np.array_equal(state["w0"], np.zeros(4, np.float32))
    assert peak < 4 * MIB, f"{peak / MIB:.1f} MiB"


# ----------------------------------------------------------------------------------------- dtypes and values

@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_complex_tensor_is_refused_naming_the_key(tmp_path, fmt):
    path = save(OrderedDict(ok=torch.zeros(2), z=torch.ones(3, dtype=torch.complex64)), tmp_path / "c.pt", fmt)
    assert "key 'z': dtype complex64 is not supported" in assert_refused(path, "not supported")


@pytest.mark.parametrize("fmt", ["zip", "legacy", "pickle"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nonfinite_weights_are_refused_unless_allowed(tmp_path, fmt, bad):
    w = torch.tensor([1.0, bad, 2.0, bad])
    sd = {"model": OrderedDict(ok=torch.ones(2), w=w)}
    path = tmp_path / "nan.pt"
    if fmt == "pickle":
        with open(path, "wb") as f:
            pickle.dump({"model": {k: v.numpy() for k, v in sd["model"].items()}}, f)
    else:
        save(sd, path, fmt)
    msg = assert_refused(path, "non-finite")
    assert "key 'model/w' holds 2 non-finite values" in msg and "--allow-nonfinite" in msg
    state, _ = read_state_dict(path, allow_nonfinite=True)
    assert state["w"].tobytes() == w.numpy().tobytes()
    load_checkpoint(path)  # the whole-object reader leaves values to its caller


# ---------------------------------------------------------------------------------------------- the converter

# runs a script, then writes its peak RSS in kB (VmHWM: unlike ru_maxrss, not inherited from the forked parent)
RSS_WRAPPER = ("import os, runpy, sys\n"
               "sys.argv = sys.argv[1:]\n"
               "try:\n"
               "    runpy.run_path(sys.argv[0], run_name='__main__')\n"
               "finally:\n"
               "    hwm = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]\n"
               "    with open(os.environ['RSS_OUT'], 'w') as f:\n"
               "        f.write(hwm)\n")


def convert_measured(src, out, *args, umask=None):
    """tools/convert_weights.py in a child; returns (CompletedProcess, peak RSS in bytes)."""
    rss = f"{out}.rss"
    env = dict(os.environ, RSS_OUT=rss, PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, "-c", RSS_WRAPPER, CONVERT, str(src), str(out), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=120, env=env,
                          preexec_fn=None if umask is None else (lambda: os.umask(umask)))
    with open(rss) as f:
        peak = int(f.read()) * 1024
    os.remove(rss)
    return proc, peak


@pytest.mark.parametrize("name", ["object array in a set", "bytearray(1.5 GB)", "lists nested 1.2 M deep",
                                  "BUILD on the FloatStorage stand-in", "string array", "complex array"])
def test_convert_hostile_exit_2(tmp_path, name):
    """Before: exit 139 (segfault), 1.5 GB RSS, an 'internal error' after a RecursionError, ..."""
    src, out = tmp_path / "in.pkl", tmp_path / "out.pkl"
    src.write_bytes(HOSTILE[name][0])
    proc, peak = convert_measured(src, out)
    line = assert_one_line_error(proc, src)
    assert proc.returncode == 2 and any(p in line for p in HOSTILE[name][1].split("|")), line
    assert peak < 300 * MIB, f"{peak / MIB:.0f} MiB"
    assert not out.exists() and leftovers(tmp_path) == []


def pwc_pickle(path, nan_key=None):
    """The 126 PWC-Net keys (random float32) as a plain pickle, with one NaN in ``nan_key`` if given."""
    from jittor_sbvsr.weights import reference_shapes

    rng = np.random.default_rng(0)
    sd = OrderedDict((k, rng.standard_normal(s).astype(np.float32)) for k, s in reference_shapes("pwc").items())
    if nan_key:
        sd[nan_key].flat[3] = np.nan
    with open(path, "wb") as f:
        pickle.dump(sd, f, protocol=4)
    return path


def test_convert_refuses_nonfinite_unless_allowed(tmp_path):
    key = "moduleExtractor.moduleOne.0.weight"
    src, out = pwc_pickle(tmp_path / "pwc_nan.pkl", key), tmp_path / "out.pkl"
    proc, _ = convert_measured(src, out)
    line = assert_one_line_error(proc, src)
    assert proc.returncode == 2 and f"key '{key}' holds 1 non-finite values" in line and not out.exists()
    proc, _ = convert_measured(src, out, "--allow-nonfinite")
    assert proc.returncode == 0, proc.stderr
    with open(out, "rb") as f:
        assert np.isnan(pickle.load(f)["state_dict"][key].flat[3])
    assert leftovers(tmp_path) == []


def test_convert_output_respects_umask(tmp_path):
    """Before: always 0600 (the temporary file's mode)."""
    src, out = pwc_pickle(tmp_path / "pwc.pkl"), tmp_path / "out.pkl"
    for umask, mode in [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)]:
        proc, _ = convert_measured(src, out, "--force", umask=umask)
        assert proc.returncode == 0, proc.stderr
        assert os.stat(out).st_mode & 0o777 == mode, (oct(umask), oct(os.stat(out).st_mode))
    assert leftovers(tmp_path) == []


# ---------------------------------------------------------------------------------------------------- fuzzing

SNIPPETS = [glob("os", "system"), glob("builtins", "eval"), glob("builtins", "set"), pickle.REDUCE, pickle.BUILD,
            pickle.NEWOBJ, pickle.APPEND, pickle.SETITEM, pickle.EMPTY_SET, pickle.DUP, pickle.TUPLE1 * 50,
            pickle.BINBYTES8 + struct.pack("<Q", 1 << 40), pickle.BYTEARRAY8 + struct.pack("<Q", 1 << 33),
            pickle.LONG4 + struct.pack("<i", 1 << 30), pickle.FRAME + struct.pack("<Q", 1 << 35),
            pickle.BINGET + b"\x00", pickle.MARK * 40, pickle.EMPTY_LIST * 60 + pickle.APPEND * 59,
            np_dtype("O8", (3, "|", None, None, None, -1, -1, 63))]
INTERESTING = [0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 1 << 40, (1 << 63) - 1]


def mutate(data, rng, marker):
    """One to four seeded edits: a random byte, an extreme integer (over a length field, say), a deletion, a
    duplicated chunk, a hostile opcode snippet, an os.system payload touching ``marker``, or truncation."""
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        how = rng.randrange(7)
        at = rng.randrange(len(data))
        if how == 0:
            data[at] = rng.randrange(256)
        elif how == 1:
            width = rng.choice([1, 2, 4, 8])
            data[at:at + width] = (rng.choice(INTERESTING) & ((1 << 8 * width) - 1)).to_bytes(width, "little")
        elif how == 2:
            del data[at:at + rng.randint(1, 64)]
        elif how == 3:
            data[at:at] = data[rng.randrange(len(data)):][:rng.randint(1, 64)]
        elif how == 4:
            data[at:at] = rng.choice(SNIPPETS)
        elif how == 5:
            data[at:at] = system(marker)
        else:
            del data[at:]
        if not data:
            data = bytearray(b"\x80")
    return bytes(data)


def rezip(data, rng, marker):
    """The zip archive with its data.pkl mutated and re-zipped (valid CRCs), so the fuzz reaches the pickle."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as z, zipfile.ZipFile(out, "w") as o:
        for info in z.infolist():
            body = z.read(info)
            o.writestr(info, mutate(body, rng, marker) if info.filename.endswith("data.pkl") else body)
    return out.getvalue()


def plain(obj):
    """True when ``obj`` is made of containers, scalars, strings and numeric numpy arrays only."""
    if isinstance(obj, dict):
        return all(plain(k) and plain(v) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return all(plain(v) for v in obj)
    if isinstance(obj, (np.ndarray, np.generic)):
        return obj.dtype.kind in "biuf"
    if isinstance(obj, np.dtype):
        return obj.kind in "biuf"
    return obj is None or isinstance(obj, (bool, int, float, str, bytes, bytearray))


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    """Small valid files: a 3-tensor state dict in both torch formats, numpy pickles, a trainer checkpoint."""
    d = tmp_path_factory.mktemp("seeds")
    g = torch.Generator().manual_seed(0)
    sd = OrderedDict([("conv.weight", torch.randn(4, 3, 3, 3, generator=g)),
                      ("conv.bias", torch.randn(4, generator=g)), ("bn.num_batches_tracked", torch.tensor(3))])
    out = {fmt: open(save(sd, d / f"{fmt}.pt", fmt), "rb").read() for fmt in ("zip", "legacy")}
    arrays = OrderedDict((k, v.numpy()) for k, v in sd.items())
    out["pickle2"] = pickle.dumps(arrays, protocol=2)
    moments = [np.zeros_like(a) for a in arrays.values()]
    out["trainer"] = pickle.dumps(  # laid out as jittor_sbvsr/trainer/experiment.py saves model_latest.pkl
        {"format": "jittor-sbvsr-train-1", "model": arrays, "epoch": 3,
         "optimizer": {"updates": 6, "backward_calls": 6,
                       "groups": [{"name": "all", "lr": 1e-4, "base_lr": 1e-4, "m": moments, "v": moments}]},
         "history": [{"epoch": 1, "loss": 0.5, "psnr": None}],
         "rng": {"python": random.Random(0).getstate(), "numpy": np.random.RandomState(0).get_state()},
         "meta": {"epoch": 3, "psnr": None, "saved": "2024-01-01 00:00:00"}}, protocol=pickle.HIGHEST_PROTOCOL)
    return out


def test_fuzz_mutated_checkpoints(tmp_path, seeds, stand_ins):
    """600 seeded mutations of small valid files, loaded in-process: a clean one-line CheckpointError or a
    load of plain numeric data; tracemalloc peak bounded; no payload ran; nothing written; then six of the
    refused ones through the converter (exit status 2, one line, no output)."""
    for name, data in seeds.items():  # unmutated, each loads exactly
        (tmp_path / "seed.pt").write_bytes(data)
        obj, _ = load_checkpoint(tmp_path / "seed.pt")
        state = obj["model"] if "model" in obj else obj
        assert plain(obj) and list(state) == ["conv.weight", "conv.bias", "bn.num_batches_tracked"], name
        assert state["conv.weight"].shape == (4, 3, 3, 3) and state["bn.num_batches_tracked"] == 3, name
    os.remove(tmp_path / "seed.pt")
    rng = random.Random(14)
    marker = tmp_path / "PWNED"
    names = sorted(seeds)
    refused, loaded = [], 0
    path = tmp_path / "case.pt"
    tracemalloc.start()
    try:
        for i in range(600):
            name = names[i % len(names)]
            data = rezip(seeds[name], rng, marker) if name == "zip" and i % 2 else mutate(seeds[name], rng, marker)
            path.write_bytes(data)
            tracemalloc.reset_peak()
            t0 = time.perf_counter()
            try:
                obj, _ = load_checkpoint(path)
                assert plain(obj), (name, i)
                loaded += 1
            except CheckpointError as e:
                msg = str(e)
                assert msg.startswith(f"{path}: ") and "\n" not in msg, msg
                refused.append(data)
            elapsed = time.perf_counter() - t0
            peak = tracemalloc.get_traced_memory()[1]
            assert peak < PEAK_LIMIT and elapsed < 5, (name, i, peak, elapsed)
            assert os.listdir(tmp_path) == ["case.pt"], (name, i)
    finally:
        tracemalloc.stop()
    assert not marker.exists()
    assert loaded > 20 and len(refused) > 300, (loaded, len(refused))
    for i, data in enumerate(refused[::len(refused) // 6][:6]):
        src, out = tmp_path / f"refused{i}.pt", tmp_path / f"refused{i}.out.pkl"
        src.write_bytes(data)
        proc = run_convert(src, out)
        assert proc.returncode == 2
        assert_one_line_error(proc, src)
        assert not out.exists() and leftovers(tmp_path) == []
    assert not marker.exists()
