"""Torch-free reader for PyTorch checkpoints (and plain pickles of numpy arrays).

Reads, without PyTorch installed and without importing Jittor:

* the zip format written by ``torch.save`` since PyTorch 1.6 (``<name>/data.pkl`` + one record per storage);
* the legacy format of PyTorch < 1.6 (e.g. the upstream 0.4.1 checkpoints and PWC-Net's
  ``network-default.pytorch``): pickled magic number, protocol version and system info, the object pickle, the
  pickled list of storage keys, then every storage as ``int64 numel`` + raw bytes;
* plain pickles (this project's converted ``.pkl`` files and trainer checkpoints) whose payload is numpy arrays.

The format is detected from the file's content, never from its name.

Tensors and arrays come back as numpy arrays of the file's dtype: bool, int8..int64, uint8..uint64, float16,
float32, float64 (bfloat16 is widened exactly to float32); any other dtype (complex, strings, objects) is
refused with the key it was found under. Tensors that are views into a shared storage (offsets, strides,
transposes) are reconstructed exactly; storages saved on CUDA are read like CPU ones (the bytes are the same).
Storages are read once each, with ``readinto`` straight into their final buffer; a tensor that covers its
whole storage contiguously is returned as a zero-copy view of that buffer.

Every pickle goes through ``restricted_pickle.RestrictedUnpickler``: only the handful of globals a checkpoint
needs resolve, to stand-ins, so nothing in the file is ever executed; nesting, sizes and allocations are
bounded by the file's size (see that module). ``read_state_dict`` also refuses non-finite (NaN, infinite)
weights unless ``allow_nonfinite=True``.

Public API::

    read_state_dict(path, allow_nonfinite=False) -> (OrderedDict[str, np.ndarray], CheckpointInfo)
    load_checkpoint(path) -> (object, format)      # whole object, tensors as numpy arrays
    detect_format(path)   -> "torch-zip" | "torch-legacy" | "pickle"
    CheckpointError                                 # every failure; message starts with the file name

This module must not import torch or jittor.
"""
import io
import math
import os
import pickle
import struct
import zipfile
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from .restricted_pickle import (MAX_NDIM, SUPPORTED, Budget, Callable, Deferred, Fail, Frozen, Reader, Refused,
                                RestrictedUnpickler, materialize, numpy_globals, supported_dtype)

__all__ = ["CheckpointError", "CheckpointInfo", "read_state_dict", "load_checkpoint", "detect_format",
           "find_state_dict", "FORMAT_NAMES", "WRAPPER_KEYS"]

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001
_LEGACY_MAGIC_BYTES = b"\x8a\x0a" + LEGACY_MAGIC_NUMBER.to_bytes(10, "little")
WRAPPER_KEYS = ("state_dict", "model", "net")
FORMAT_NAMES = {
    "torch-zip": "PyTorch zip format (torch >= 1.6)",
    "torch-legacy": "PyTorch legacy format (torch < 1.6)",
    "pickle": "plain pickle of numpy arrays",
}
_CHUNK = 1 << 20  # bytes inflated at a time from a compressed zip member


class CheckpointError(Exception):
    """A checkpoint could not be read or used. ``str(err)`` is one line: ``<file>: <reason>``."""

    def __init__(self, path, reason):
        self.path = os.fspath(path) if path is not None else "<unknown>"
        self.reason = " ".join(str(reason).split())  # always one line
        super().__init__(f"{self.path}: {self.reason}")


# ----------------------------------------------------------------------------------------------------------
# storage types and tensor placeholders
# ----------------------------------------------------------------------------------------------------------

_BF16 = "bfloat16"  # numpy has no bfloat16: read as uint16, widened to float32 when materialised

# storage class name -> numpy dtype of one element (complex ones only size their records: never built)
_STORAGE_DTYPES = {
    "DoubleStorage": np.dtype("<f8"), "FloatStorage": np.dtype("<f4"), "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": _BF16,
    "LongStorage": np.dtype("<i8"), "IntStorage": np.dtype("<i4"), "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"), "ByteStorage": np.dtype("u1"), "BoolStorage": np.dtype("?"),
    "ComplexFloatStorage": np.dtype("<c8"), "ComplexDoubleStorage": np.dtype("<c16"),
    "UntypedStorage": np.dtype("u1"),
}

# torch dtype attribute name -> numpy dtype
_TORCH_DTYPES = {
    "float64": np.dtype("<f8"), "double": np.dtype("<f8"), "float32": np.dtype("<f4"), "float": np.dtype("<f4"),
    "float16": np.dtype("<f2"), "half": np.dtype("<f2"), "bfloat16": _BF16,
    "int64": np.dtype("<i8"), "long": np.dtype("<i8"), "int32": np.dtype("<i4"), "int": np.dtype("<i4"),
    "int16": np.dtype("<i2"), "short": np.dtype("<i2"), "int8": np.dtype("i1"), "uint8": np.dtype("u1"),
    "uint16": np.dtype("<u2"), "uint32": np.dtype("<u4"), "uint64": np.dtype("<u8"), "bool": np.dtype("?"),
    "complex64": np.dtype("<c8"), "cfloat": np.dtype("<c8"), "complex128": np.dtype("<c16"),
    "cdouble": np.dtype("<c16"),
}


def _raw_dtype(dt):
    """numpy dtype used to hold the raw elements (bfloat16 is held as uint16)."""
    return np.dtype("<u2") if dt is _BF16 else dt


class _TorchName(Frozen):
    """Stands in for a torch global that is a name, not code: a storage class (``torch.FloatStorage``), a dtype
    (``torch.float16``) or a tensor class (``torch.nn.Parameter``), as ``kind`` says; ``dtype`` is the numpy
    element type of the first two. Never called."""

    __slots__ = ("kind", "name", "dtype")

    def __init__(self, kind, name, dtype=None):
        super().__init__(kind=kind, name=name, dtype=dtype)

    def __repr__(self):
        return self.name


class _Storage(Deferred):
    """One storage record: element dtype, number of elements, location; its bytes are read after unpickling."""

    __slots__ = ("key", "dtype", "numel", "location", "data")

    def __init__(self, key, dtype, numel, location):
        super().__init__()
        self.key, self.dtype, self.numel, self.location = key, dtype, numel, location
        self.data = None  # 1-D uint8 array of nbytes

    @property
    def nbytes(self):
        return self.numel * _element_size(self.dtype)

    def _build(self, budget):
        raise Fail("the file holds a bare storage object, which is not supported")


class _StorageView(Deferred):
    """Legacy-format storage view (torch < 1.0 could pickle a slice of a root storage)."""

    __slots__ = ("root", "offset", "numel")

    def __init__(self, root, offset, numel):
        super().__init__()
        self.root, self.offset, self.numel = root, offset, numel

    _build = _Storage._build


def _ints(values, what):
    if not isinstance(values, (tuple, list)) or len(values) > MAX_NDIM or \
            not all(type(v) is int and v >= 0 for v in values):
        raise Fail(f"tensor with an invalid {what} (corrupt file)")
    return tuple(values)


class _TensorRef(Deferred):
    """A tensor to be built once storage data is available."""

    __slots__ = ("storage", "offset", "size", "stride", "dtype")

    def __init__(self, storage, offset, size, stride, dtype=None):
        super().__init__()
        if not isinstance(storage, (_Storage, _StorageView)):
            raise Fail(f"tensor rebuilt from a {type(storage).__name__}, not a storage (corrupt or unsupported)")
        if type(offset) is not int or offset < 0:
            raise Fail("tensor with an invalid storage offset (corrupt file)")
        self.storage, self.offset = storage, offset
        self.size, self.stride = _ints(size, "size"), _ints(stride, "stride")
        if len(self.size) != len(self.stride):
            raise Fail("tensor size and stride have different lengths (corrupt file)")
        self.dtype = dtype  # None: the storage's dtype

    def _build(self, budget):
        return _build_tensor(self, budget)


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       dtype=None, metadata=None):
    dt = dtype.dtype if isinstance(dtype, _TorchName) and dtype.kind == "dtype" else None
    return _TensorRef(storage, storage_offset, size, stride, dt)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *state):
    if not isinstance(data, _TensorRef):
        raise Fail("parameter rebuilt from something that is not a tensor (corrupt or unsupported)")
    return data


_REBUILDERS = {name: Callable(f"torch._utils.{name}", fn) for name, fn in [
    ("_rebuild_tensor", _rebuild_tensor), ("_rebuild_tensor_v2", _rebuild_tensor_v2),
    ("_rebuild_tensor_v3", _rebuild_tensor_v3), ("_rebuild_parameter", _rebuild_parameter),
    ("_rebuild_parameter_with_state", _rebuild_parameter)]}


def _rebuild_from_type(func, new_type, args, state=None):
    if func not in _REBUILDERS.values() or type(args) is not tuple:
        raise Fail("tensor subclass rebuilt through an unsupported function")
    return func(*args)


def _torch_size(dims):
    return _ints(dims, "size")


def _torch_device(*args):
    if not args or not isinstance(args[0], str):
        raise Fail("torch.device without a name (corrupt file)")
    return args[0]


def _ordered_dict(*args):
    """``OrderedDict()``, or ``OrderedDict([[key, value], ...])`` as Python 2 pickled it."""
    if not args:
        return OrderedDict()
    if len(args) != 1 or not isinstance(args[0], (list, tuple)) or \
            not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in args[0]):
        raise Fail("OrderedDict built from something other than key/value pairs (corrupt file)")
    return OrderedDict(args[0])


def _codecs_encode(obj, encoding="utf-8", errors="strict"):
    # protocol-2 pickles written by Python 3 store bytes as _codecs.encode(str, 'latin1')
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1", "utf-8", "utf8", "ascii") or \
            errors != "strict":
        raise Fail("unsupported _codecs.encode call in pickle")
    return obj.encode(encoding)


def _element_size(dt):
    return _raw_dtype(dt).itemsize


def _dtype_name(dt):
    return _BF16 if dt is _BF16 else str(dt)


def _build_tensor(ref, budget):
    """numpy array for one tensor: exact strided view of its storage, copied unless it is the whole storage."""
    st = ref.storage
    sdt = st.root.dtype if isinstance(st, _StorageView) else st.dtype
    tdt = ref.dtype if ref.dtype is not None else sdt
    if tdt is not _BF16 and not supported_dtype(tdt):
        raise Fail(f"dtype {_dtype_name(tdt)} is not supported (only {SUPPORTED} and bfloat16 tensors load)")
    # the storage's bytes this tensor may address (a legacy view is a window of its root storage)
    if isinstance(st, _StorageView):
        first, nbytes, st = st.offset * _element_size(sdt), st.numel * _element_size(sdt), st.root
    else:
        first, nbytes = 0, st.nbytes
    if st.data is None:
        raise Fail(f"storage {st.key!r} has no data in the file (truncated or corrupt)")
    item = _element_size(tdt)
    # a tensor of another dtype over an (untyped) storage counts offset and strides in its own elements
    flat = st.data[first:first + nbytes - nbytes % item].view(_raw_dtype(tdt))
    size, stride, offset = ref.size, ref.stride, ref.offset
    numel = math.prod(size)
    if numel == 0:
        out = np.empty(size, dtype=_raw_dtype(tdt))
    else:
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= flat.shape[0]:
            raise Fail(f"tensor of size {list(size)} at offset {offset} runs past the end of its storage "
                       f"({flat.shape[0]} elements; corrupt file)")
        contiguous = _is_contiguous(size, stride)
        if contiguous and offset == 0 and numel == flat.shape[0] and flat.nbytes == st.data.nbytes:
            out = flat.reshape(size)  # the whole storage: no copy
        else:
            budget.charge(numel * item, f"tensor of size {list(size)}")
            if contiguous:
                out = flat[offset:offset + numel].reshape(size).copy()
            else:
                view = np.lib.stride_tricks.as_strided(flat[offset:], shape=size,
                                                       strides=[s * item for s in stride], writeable=False)
                out = np.array(view, order="C", copy=True)
    if tdt is _BF16:
        budget.charge(4 * numel, f"bfloat16 tensor of size {list(size)} widened to float32")
        wide = out.astype(np.uint32)
        wide <<= 16
        out = wide.view(np.float32)
    return out


def _is_contiguous(size, stride):
    expected = 1
    for n, s in zip(reversed(size), reversed(stride)):
        if n != 1 and s != expected:
            return False
        expected *= n
    return True


# ----------------------------------------------------------------------------------------------------------
# allow-list
# ----------------------------------------------------------------------------------------------------------

def _build_allowed():
    """(module, name) -> stand-in, for every global a checkpoint may name; nothing else resolves."""
    allowed = {("collections", "OrderedDict"): Callable("collections.OrderedDict", _ordered_dict)}
    for name, fn in _REBUILDERS.items():
        allowed[("torch._utils", name)] = fn
    from_type = Callable("torch._utils._rebuild_from_type", _rebuild_from_type)
    for mod, name in (("torch._utils", "_rebuild_from_type"), ("torch._tensor", "_rebuild_from_type_v2"),
                      ("torch._tensor", "_rebuild_from_type")):
        allowed[(mod, name)] = from_type
    for name, dt in _STORAGE_DTYPES.items():
        st = _TorchName("storage", f"torch.{name}", dt)
        for mod in ("torch", "torch.cuda", "torch.storage"):
            allowed[(mod, name)] = st
    for name, dt in _TORCH_DTYPES.items():
        allowed[("torch", name)] = _TorchName("dtype", f"torch.{name}", dt)
    for mod, name in (("torch", "Tensor"), ("torch._tensor", "Tensor"), ("torch.nn.parameter", "Parameter"),
                      ("torch.nn", "Parameter")):
        allowed[(mod, name)] = _TorchName("tensor class", f"{mod}.{name}")
    allowed[("torch", "Size")] = Callable("torch.Size", _torch_size)
    allowed[("torch", "device")] = Callable("torch.device", _torch_device)
    allowed[("_codecs", "encode")] = Callable("_codecs.encode", _codecs_encode)
    allowed.update(numpy_globals())
    return allowed


_ALLOWED = _build_allowed()


def _unpickle(reader, budget, persistent_load=None):
    return RestrictedUnpickler(reader, _ALLOWED, budget, persistent_load).load()


def _decode(s):
    return s.decode("ascii") if isinstance(s, bytes) else s


# ----------------------------------------------------------------------------------------------------------
# format readers
# ----------------------------------------------------------------------------------------------------------

def _read_storage(storage, nbytes, big_endian, what, budget, read_into):
    """Fill ``storage`` from ``read_into(buffer)`` once its ``nbytes`` are known to match the record."""
    if nbytes != storage.nbytes:
        raise Fail(f"{what} holds {nbytes} bytes, expected {storage.nbytes} "
                   f"({storage.numel} x {_element_size(storage.dtype)}; corrupt file)")
    if storage.data is not None:
        raise Fail(f"{what} appears twice (corrupt file)")
    budget.charge(nbytes, what)
    data = np.empty(nbytes, dtype=np.uint8)
    read_into(data)
    raw_dt = _raw_dtype(storage.dtype)
    if big_endian and raw_dt.itemsize > 1:
        data.view(raw_dt).byteswap(inplace=True)
    storage.data = data


class _StorageTable:
    """persistent_load for both torch formats: records storages by key."""

    def __init__(self, legacy):
        self.legacy = legacy
        self.storages = {}
        self.views = {}

    def __call__(self, pid):
        if not isinstance(pid, tuple) or not pid:
            raise Fail("unexpected persistent id in pickle (not a PyTorch file?)")
        typename = _decode(pid[0])
        if typename == "module":
            raise Refused("the file holds a pickled model object (torch.save(model)), not a state dict; "
                          "save model.state_dict() instead")
        if typename != "storage":
            raise Fail(f"unknown persistent id type {typename!r}")
        if self.legacy:
            if len(pid) != 6:
                raise Fail("malformed storage record in legacy pickle")
            _, stype, key, location, numel, view_meta = pid
        else:
            if len(pid) != 5:
                raise Fail("malformed storage record in zip pickle")
            _, stype, key, location, numel = pid
            view_meta = None
        if not (isinstance(stype, _TorchName) and stype.kind == "storage"):
            raise Fail(f"storage of unsupported type {stype!r}")
        key = _decode(key)
        if not isinstance(key, str) or type(numel) is not int or numel < 0:
            raise Fail("storage record with an invalid key or size (corrupt file)")
        st = self.storages.get(key)
        if st is None:
            st = self.storages[key] = _Storage(key, stype.dtype, numel, _decode(location))
        if view_meta is not None:
            if not (isinstance(view_meta, tuple) and len(view_meta) == 3):
                raise Fail("malformed storage view in legacy pickle")
            view_key, offset, view_size = view_meta
            view_key = _decode(view_key)
            if view_key not in self.views:
                if type(offset) is not int or type(view_size) is not int or offset < 0 or view_size < 0 \
                        or offset + view_size > st.numel:
                    raise Fail("storage view outside its root storage (corrupt file)")
                self.views[view_key] = _StorageView(st, offset, view_size)
            return self.views[view_key]
        return st


def _sniff(f):
    head = f.read(8)
    f.seek(0)
    return head


def _open_format(f):
    head = _sniff(f)
    if not head:
        raise Fail("file is empty")
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "torch-zip"
    if head[:1] == b"\x80":
        # a pickle; legacy torch files start with the pickled magic number (LONG1 opcode + 10 bytes)
        f.seek(0)
        start = f.read(32)
        f.seek(0)
        if _LEGACY_MAGIC_BYTES in start:
            return "torch-legacy"
        return "pickle"
    if _looks_like_tar(f):
        return "torch-tar"
    return "unknown"


def _looks_like_tar(f):
    f.seek(257)
    magic = f.read(5)
    f.seek(0)
    return magic == b"ustar"


def _describe_unknown(f):
    head = f.read(512)
    f.seek(0)
    if not head:
        return "file is empty"
    try:
        head.decode("utf-8")
        is_text = all(c >= 32 or c in (9, 10, 13) for c in head)
    except UnicodeDecodeError:
        is_text = False
    if is_text:
        return "not a PyTorch checkpoint or pickle: it looks like a text file"
    return (f"not a PyTorch checkpoint or pickle: unrecognised content (starts with {head[:8].hex()}; "
            f"expected a zip archive or a pickle)")


def _load_legacy(reader, budget):
    if _unpickle(reader, budget) != LEGACY_MAGIC_NUMBER:
        raise Fail("invalid magic number (corrupt file)")
    version = _unpickle(reader, budget)
    if version != LEGACY_PROTOCOL_VERSION:
        raise Fail(f"unsupported legacy protocol version {version!r}")
    sys_info = _unpickle(reader, budget)
    big_endian = isinstance(sys_info, dict) and sys_info.get("little_endian", True) is False
    table = _StorageTable(legacy=True)
    obj = _unpickle(reader, budget, table)
    keys = _unpickle(reader, budget)
    if not isinstance(keys, list):
        raise Fail("storage key list missing (corrupt file)")
    for key in keys:
        key = _decode(key)
        st = table.storages.get(key) if isinstance(key, str) else None
        if st is None:
            raise Fail(f"storage {key!r} listed but never used by the pickle (corrupt file)")
        numel, = struct.unpack(">q" if big_endian else "<q", reader.read(8))
        _read_storage(st, numel * _element_size(st.dtype), big_endian, f"storage {key!r}", budget,
                      reader.readinto)
    missing = [k for k, s in table.storages.items() if s.data is None]
    if missing:
        raise Fail(f"storage {missing[0]!r} is used but has no data (corrupt file)")
    return obj


def _zip_data_offset(reader, info):
    """Absolute offset of a STORED member's bytes (local header is 30 bytes + name + extra)."""
    reader.seek(info.header_offset)
    hdr = reader.read(30)
    if hdr[:4] != b"PK\x03\x04":
        raise Fail(f"zip member {info.filename!r} has a bad local header (corrupt file)")
    name_len, extra_len = struct.unpack("<HH", hdr[26:30])
    return info.header_offset + 30 + name_len + extra_len


def _open_member(zf, info):
    if info.flag_bits & 0x1:
        raise Fail(f"zip member {info.filename!r} is encrypted")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise Fail(f"zip member {info.filename!r} uses an unsupported compression method "
                   f"({info.compress_type}; stored or deflated only)")
    return zf.open(info)


def _member_bytes(zf, info, budget):
    """A small zip member's bytes; inflating stops at its declared size, charged to ``budget`` first."""
    budget.charge(info.file_size, f"zip member {info.filename!r}")
    with _open_member(zf, info) as m:
        data = m.read(info.file_size)
    if len(data) != info.file_size:
        raise Fail(f"zip member {info.filename!r} is truncated")
    return data


def _member_into(zf, info, out):
    """Inflate zip member ``info`` into ``out`` (exactly its declared size), one chunk at a time."""
    mv = memoryview(out).cast("B")
    got = 0
    with _open_member(zf, info) as m:
        while got < mv.nbytes:
            chunk = m.read(min(_CHUNK, mv.nbytes - got))
            if not chunk:
                raise Fail(f"zip member {info.filename!r} is truncated")
            mv[got:got + len(chunk)] = chunk
            got += len(chunk)


def _load_zip(reader, budget):
    try:
        zf = zipfile.ZipFile(reader)
    except zipfile.BadZipFile as e:
        raise Fail(f"truncated or corrupt zip archive ({e})")
    with zf:
        infos = {i.filename: i for i in zf.infolist()}
        pkl = [n for n in infos if n == "data.pkl" or n.endswith("/data.pkl")]
        if not pkl:
            if any(n.endswith("/code/") or "/code/" in n for n in infos):
                raise Fail("this is a TorchScript archive (torch.jit.save), not a state dict")
            raise Fail("zip archive without data.pkl: not a PyTorch checkpoint")
        pkl = min(pkl, key=len)
        prefix = pkl[: -len("data.pkl")]
        if any(n.startswith(prefix + "code/") for n in infos):
            raise Fail("this is a TorchScript archive (torch.jit.save), not a state dict")
        big_endian = False
        if prefix + "byteorder" in infos:
            order = _member_bytes(zf, infos[prefix + "byteorder"], budget)
            if order not in (b"little", b"big"):
                raise Fail(f"unknown byte order {order[:16]!r}")
            big_endian = order == b"big"
        try:
            data_pkl = _member_bytes(zf, infos[pkl], budget)
        except (zipfile.BadZipFile, zlib.error) as e:
            raise Fail(f"corrupt zip member {pkl!r} ({e})")
        table = _StorageTable(legacy=False)
        obj = _unpickle(Reader(io.BytesIO(data_pkl), len(data_pkl)), budget, table)
        for key, st in table.storages.items():
            name = f"{prefix}data/{key}"
            info = infos.get(name)
            if info is None:
                raise Fail(f"storage record {name!r} is missing from the archive (corrupt file)")
            what = f"storage record {name!r}"
            if info.compress_type == zipfile.ZIP_STORED and info.compress_size == info.file_size:
                def read_stored(out, info=info, what=what):  # straight from the file, as torch wrote it
                    reader.seek(_zip_data_offset(reader, info))
                    reader.readinto(out)
                    if zlib.crc32(out) != info.CRC:
                        raise Fail(f"{what} fails its CRC check (corrupt file)")

                _read_storage(st, info.file_size, big_endian, what, budget, read_stored)
            else:  # not written by torch, but a re-zipped archive is still a valid zip
                _read_storage(st, info.file_size, big_endian, what, budget,
                              lambda out, info=info: _member_into(zf, info, out))
        return obj


def _load_pickle(reader, budget):
    return _unpickle(reader, budget)


def _check_path(path):
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise CheckpointError(repr(path), "not a file path")
    path = os.fspath(path)
    if os.path.isdir(path):
        raise CheckpointError(path, "is a directory, not a checkpoint file")
    if not os.path.exists(path):
        raise CheckpointError(path, "no such file")
    return path


def _with_errors(path, fn):
    try:
        with open(path, "rb") as f:
            return fn(f)
    except CheckpointError:
        raise
    except Fail as e:
        raise CheckpointError(path, str(e)) from None
    except PermissionError as e:
        raise CheckpointError(path, f"cannot read: {e.strerror}") from None
    except (EOFError, pickle.UnpicklingError, struct.error, IndexError, ValueError, TypeError, KeyError,
            AttributeError, UnicodeDecodeError, OverflowError, zipfile.BadZipFile, zlib.error) as e:
        msg = str(e) or type(e).__name__
        if isinstance(e, EOFError) or "truncated" in msg or "ran out of input" in msg.lower():
            raise CheckpointError(path, f"file is truncated or corrupt (pickle data ended early: {msg})") from None
        raise CheckpointError(path, f"corrupt or unsupported file ({type(e).__name__}: {msg})") from None
    except MemoryError:
        raise CheckpointError(path, "out of memory while reading (corrupt size field?)") from None
    except OSError as e:
        raise CheckpointError(path, f"cannot read: {e.strerror or e}") from None


def detect_format(path):
    """'torch-zip', 'torch-legacy' or 'pickle', from the file's content. Raises CheckpointError otherwise."""
    path = _check_path(path)

    def run(f):
        fmt = _open_format(f)
        if fmt == "torch-tar":
            raise Fail("PyTorch tar format (torch < 0.1.10) is not supported")
        if fmt == "unknown":
            raise Fail(_describe_unknown(f))
        return fmt

    return _with_errors(path, run)


_LOADERS = {"torch-zip": _load_zip, "torch-legacy": _load_legacy, "pickle": _load_pickle}


def load_checkpoint(path):
    """Read a checkpoint; return ``(obj, fmt)`` with every tensor replaced by a numpy array."""
    path = _check_path(path)

    def run(f):
        fmt = _open_format(f)
        if fmt == "torch-tar":
            raise Fail("PyTorch tar format (torch < 0.1.10) is not supported")
        if fmt not in _LOADERS:
            raise Fail(_describe_unknown(f))
        size = os.fstat(f.fileno()).st_size
        budget = Budget(size)
        obj = _LOADERS[fmt](Reader(f, size), budget)
        return materialize(obj, budget), fmt

    return _with_errors(path, run)


@dataclass
class CheckpointInfo:
    """Where a state dict came from inside a checkpoint file."""
    path: str
    format: str                      # "torch-zip" | "torch-legacy" | "pickle"
    wrapper_key: str = None          # "state_dict" / "model" / "net" when the state dict was wrapped
    stripped_prefix: str = ""        # "module." when a DataParallel prefix was removed
    meta: dict = field(default_factory=dict)  # the "meta" record of a converted .pkl, if any

    @property
    def format_name(self):
        return FORMAT_NAMES.get(self.format, self.format)


def _is_array_dict(obj):
    return (isinstance(obj, dict) and len(obj) > 0
            and all(isinstance(k, str) and isinstance(v, np.ndarray) for k, v in obj.items()))


def find_state_dict(obj):
    """Return ``(state_dict, wrapper_key)`` for a dict of arrays, or a dict wrapping one under a WRAPPER_KEYS key.

    Raises Fail (internal) when there is none.
    """
    if _is_array_dict(obj):
        return obj, None
    if isinstance(obj, dict):
        for key in WRAPPER_KEYS:
            if key in obj and _is_array_dict(obj[key]):
                return obj[key], key
        keys = [repr(k) for k in list(obj)[:6]]
        bad = [k for k, v in obj.items() if not isinstance(v, np.ndarray)][:3]
        hint = f"; non-tensor entries: {', '.join(map(repr, bad))}" if bad and len(bad) < len(obj) else ""
        raise Fail(f"no state dict found: a dict with keys {', '.join(keys)}{'...' if len(obj) > 6 else ''} "
                   f"that is neither name->tensor nor wraps one under {'/'.join(WRAPPER_KEYS)}{hint}")
    raise Fail(f"no state dict found: the file holds a {type(obj).__name__}, not a dict of tensors")


def _check_finite(state, wrapper):
    """Fail naming the first floating-point tensor with NaN or infinite values."""
    for key, value in state.items():
        if value.dtype.kind != "f":
            continue
        finite = np.isfinite(value)
        if not finite.all():
            name = f"{wrapper}/{key}" if wrapper else key
            raise Fail(f"key {name!r} holds {finite.size - np.count_nonzero(finite):,} non-finite values (NaN or "
                       f"infinity), which would make every output black; allow_nonfinite=True "
                       f"(--allow-nonfinite) loads them anyway")


def read_state_dict(path, allow_nonfinite=False):
    """Read ``path`` (any supported format) and return ``(OrderedDict[name, np.ndarray], CheckpointInfo)``.

    Unwraps ``{"state_dict"|"model"|"net": {...}}`` and strips a ``module.`` prefix carried by every key.
    Floating-point tensors holding NaN or infinity are refused unless ``allow_nonfinite``.
    """
    obj, fmt = load_checkpoint(path)
    path = os.fspath(path)
    try:
        state, wrapper = find_state_dict(obj)
        if not allow_nonfinite:
            _check_finite(state, wrapper)
    except Fail as e:
        raise CheckpointError(path, str(e)) from None
    meta = obj.get("meta") if wrapper and isinstance(obj.get("meta"), dict) else {}
    stripped = ""
    while state and all(k.startswith("module.") for k in state):
        state = OrderedDict((k[len("module."):], v) for k, v in state.items())
        stripped += "module."
    if not isinstance(state, OrderedDict):
        state = OrderedDict(state)
    return state, CheckpointInfo(path=path, format=fmt, wrapper_key=wrapper, stripped_prefix=stripped,
                                 meta=dict(meta))
