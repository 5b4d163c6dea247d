"""Torch-free reader for PyTorch checkpoints (and plain pickles of numpy arrays).

Reads, without PyTorch installed and without importing Jittor:

* the zip format written by ``torch.save`` since PyTorch 1.6 (``<name>/data.pkl`` + one record per storage);
* the legacy format of PyTorch < 1.6 (e.g. the upstream 0.4.1 checkpoints and PWC-Net's
  ``network-default.pytorch``): pickled magic number, protocol version and system info, the object pickle, the
  pickled list of storage keys, then every storage as ``int64 numel`` + raw bytes;
* plain pickles (this project's converted ``.pkl`` files and trainer checkpoints) whose payload is numpy arrays.

The format is detected from the file's content, never from its name.

Tensors come back as numpy arrays with the storage's dtype (float32/16/64, int8..int64, uint8, bool, complex;
bfloat16 is widened exactly to float32). Tensors that are views into a shared storage (offsets, strides,
transposes) are reconstructed exactly; storages saved on CUDA are read like CPU ones (the bytes are the same).
Storages are read once each, with ``readinto`` straight into the final numpy buffer; a tensor that covers its
whole storage contiguously is returned as a zero-copy reshape of that buffer.

Unpickling is restricted: only the handful of globals a checkpoint needs (tensor/storage reconstruction,
``collections.OrderedDict``, numpy array reconstruction, a few harmless builtins) are resolved. A pickle that
names anything else (``os.system``, ``builtins.eval``, ``builtins.open``, a model class, ...) is refused with a
``CheckpointError`` *before* the callable is fetched, so nothing in the file is ever executed.

Public API::

    read_state_dict(path) -> (OrderedDict[str, np.ndarray], CheckpointInfo)
    load_checkpoint(path) -> (object, format)      # whole object, tensors as numpy arrays
    detect_format(path)   -> "torch-zip" | "torch-legacy" | "pickle"
    CheckpointError                                 # every failure; message starts with the file name

This module must not import torch or jittor.
"""
import io
import os
import pickle
import struct
import zipfile
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

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


class CheckpointError(Exception):
    """A checkpoint could not be read or used. ``str(err)`` is one line: ``<file>: <reason>``."""

    def __init__(self, path, reason):
        self.path = os.fspath(path) if path is not None else "<unknown>"
        self.reason = " ".join(str(reason).split())  # always one line
        super().__init__(f"{self.path}: {self.reason}")


class _Fail(Exception):
    """Internal: a reason without the file name (wrapped into CheckpointError at the API boundary)."""


class _Refused(_Fail):
    pass


# ----------------------------------------------------------------------------------------------------------
# storage types and tensor placeholders
# ----------------------------------------------------------------------------------------------------------

_BF16 = "bfloat16"  # numpy has no bfloat16: read as uint16, widened to float32 when materialised

# storage class name -> numpy dtype of one element
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


class _StorageType:
    """Stands in for ``torch.FloatStorage`` etc. Not callable: it only carries the element dtype."""

    def __init__(self, name, dtype):
        self.name, self.dtype = name, dtype

    def __repr__(self):
        return f"torch.{self.name}"

    def __reduce__(self):  # never pickled back
        raise TypeError("not picklable")


class _TorchDtype:
    def __init__(self, name, dtype):
        self.name, self.dtype = name, dtype


class _TensorClass:
    """Stands in for ``torch.Tensor`` / ``torch.nn.Parameter`` (only used as an argument of rebuild functions)."""

    def __init__(self, name):
        self.name = name


class _Storage:
    """One storage record: element dtype, number of elements, location; data filled in after unpickling."""

    __slots__ = ("key", "dtype", "numel", "location", "data")

    def __init__(self, key, dtype, numel, location):
        self.key, self.dtype, self.numel, self.location = key, dtype, numel, location
        self.data = None  # 1-D numpy array of _raw_dtype(dtype), numel elements

    @property
    def nbytes(self):
        return self.numel * _raw_dtype(self.dtype).itemsize


class _StorageView:
    """Legacy-format storage view (torch < 1.0 could pickle a slice of a root storage)."""

    __slots__ = ("root", "offset", "numel")

    def __init__(self, root, offset, numel):
        self.root, self.offset, self.numel = root, offset, numel


class _TensorRef:
    """A tensor to be built once storage data is available."""

    __slots__ = ("storage", "offset", "size", "stride", "dtype", "value")

    def __init__(self, storage, offset, size, stride, dtype=None):
        if not isinstance(storage, (_Storage, _StorageView)):
            raise _Fail(f"tensor rebuilt from a {type(storage).__name__}, not a storage (corrupt or unsupported)")
        self.storage, self.offset = storage, int(offset)
        self.size = tuple(int(s) for s in size)
        self.stride = tuple(int(s) for s in stride)
        if len(self.size) != len(self.stride):
            raise _Fail("tensor size and stride have different lengths (corrupt file)")
        self.dtype = dtype  # None: the storage's dtype
        self.value = None

    def materialize(self, max_bytes=None):
        if self.value is None:
            self.value = _build_tensor(self, max_bytes)
        return self.value


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       dtype=None, metadata=None):
    dt = dtype.dtype if isinstance(dtype, _TorchDtype) else None
    return _TensorRef(storage, storage_offset, size, stride, dt)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *state):
    if not isinstance(data, _TensorRef):
        raise _Fail("parameter rebuilt from something that is not a tensor (corrupt or unsupported)")
    return data


def _rebuild_from_type(func, new_type, args, state=None):
    if func not in (_rebuild_tensor, _rebuild_tensor_v2, _rebuild_tensor_v3, _rebuild_parameter,
                    _rebuild_from_type):
        raise _Fail("tensor subclass rebuilt through an unsupported function")
    return func(*args)


def _torch_device(*args):
    return str(args[0]) if args else "cpu"


def _element_size(dt):
    return _raw_dtype(dt).itemsize


def _build_tensor(ref, max_bytes=None):
    """numpy array for one tensor: exact strided view of its storage, copied unless it is the whole storage."""
    st = ref.storage
    base_offset = 0
    if isinstance(st, _StorageView):
        base_offset, limit, st = st.offset, st.numel, st.root
    else:
        limit = st.numel
    if st.data is None:
        raise _Fail(f"storage {st.key!r} has no data in the file (truncated or corrupt)")
    sdt = st.dtype
    tdt = ref.dtype if ref.dtype is not None else sdt
    raw = st.data
    if tdt is not sdt and _raw_dtype(tdt) != _raw_dtype(sdt):
        # _rebuild_tensor_v3: a tensor of another dtype over an (untyped) storage, counted in its own elements
        raw = raw.view(np.uint8)
        nb = raw.nbytes - raw.nbytes % _element_size(tdt)
        raw = raw[:nb].view(_raw_dtype(tdt))
        scale = _element_size(tdt) / _element_size(sdt)
        base_offset, limit = int(base_offset / scale), int(limit / scale)
    size, stride, offset = ref.size, ref.stride, ref.offset
    numel = int(np.prod(size, dtype=np.int64)) if size else 1
    if offset < 0 or any(s < 0 for s in size) or any(s < 0 for s in stride):
        raise _Fail("tensor with a negative offset, size or stride (corrupt file)")
    if max_bytes is not None and numel * _element_size(tdt) > max_bytes:
        raise _Fail(f"tensor of size {list(size)} is implausibly large for this file (a hostile or corrupt "
                    f"file expanding a small storage?)")
    if numel == 0:
        out = np.empty(size, dtype=_raw_dtype(tdt))
    else:
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= limit:
            raise _Fail(f"tensor of size {list(size)} at offset {offset} runs past the end of its storage "
                        f"({limit} elements; corrupt file)")
        flat = raw[base_offset:base_offset + limit]
        contiguous = _is_contiguous(size, stride)
        if contiguous and offset == 0 and numel == flat.shape[0] and flat.shape[0] == raw.shape[0]:
            out = flat.reshape(size)  # the whole storage: no copy
        elif contiguous:
            out = flat[offset:offset + numel].reshape(size).copy()
        else:
            item = flat.itemsize
            view = np.lib.stride_tricks.as_strided(flat[offset:], shape=size,
                                                   strides=[s * item for s in stride], writeable=False)
            out = np.array(view, order="C", copy=True)
    if tdt is _BF16:
        out = (out.astype(np.uint32) << 16).view(np.float32)
    return out


def _is_contiguous(size, stride):
    expected = 1
    for n, s in zip(reversed(size), reversed(stride)):
        if n != 1 and s != expected:
            return False
        expected *= n
    return True


# ----------------------------------------------------------------------------------------------------------
# restricted unpickler
# ----------------------------------------------------------------------------------------------------------

def _numpy_globals():
    mods = {}
    try:
        from numpy.core import multiarray as _ma, numeric as _nu  # numpy 1.x
    except ImportError:  # pragma: no cover - numpy 2
        from numpy._core import multiarray as _ma, numeric as _nu
    g = {"_reconstruct": _ma._reconstruct, "scalar": _ma.scalar}
    fb = getattr(_nu, "_frombuffer", None)
    for prefix in ("numpy.core", "numpy._core"):
        mods[(prefix + ".multiarray", "_reconstruct")] = g["_reconstruct"]
        mods[(prefix + ".multiarray", "scalar")] = g["scalar"]
        if fb is not None:
            mods[(prefix + ".numeric", "_frombuffer")] = fb
    mods[("numpy", "ndarray")] = np.ndarray
    mods[("numpy", "dtype")] = np.dtype
    # numpy >= 1.25 pickles dtypes through their classes, e.g. numpy.dtypes.Float32DType
    for name in dir(getattr(np, "dtypes", None) or object()):
        if name.endswith("DType") and name != "StringDType":
            mods[("numpy.dtypes", name)] = getattr(np.dtypes, name)
    return mods


def _build_allowed():
    allowed = {("collections", "OrderedDict"): OrderedDict}
    for mod in ("torch._utils",):
        allowed[(mod, "_rebuild_tensor")] = _rebuild_tensor
        allowed[(mod, "_rebuild_tensor_v2")] = _rebuild_tensor_v2
        allowed[(mod, "_rebuild_tensor_v3")] = _rebuild_tensor_v3
        allowed[(mod, "_rebuild_parameter")] = _rebuild_parameter
        allowed[(mod, "_rebuild_parameter_with_state")] = _rebuild_parameter
        allowed[(mod, "_rebuild_from_type")] = _rebuild_from_type
    allowed[("torch._tensor", "_rebuild_from_type_v2")] = _rebuild_from_type
    allowed[("torch._tensor", "_rebuild_from_type")] = _rebuild_from_type
    for name, dt in _STORAGE_DTYPES.items():
        st = _StorageType(name, dt)
        for mod in ("torch", "torch.cuda", "torch.storage"):
            allowed[(mod, name)] = st
    for name, dt in _TORCH_DTYPES.items():
        allowed[("torch", name)] = _TorchDtype(name, dt)
    for mod, name in (("torch", "Tensor"), ("torch._tensor", "Tensor"), ("torch.nn.parameter", "Parameter"),
                      ("torch.nn", "Parameter")):
        allowed[(mod, name)] = _TensorClass(name)
    allowed[("torch", "Size")] = tuple
    allowed[("torch", "device")] = _torch_device
    for mod in ("builtins", "__builtin__"):
        for name, obj in (("set", set), ("frozenset", frozenset), ("complex", complex),
                          ("bytearray", bytearray), ("slice", slice)):
            allowed[(mod, name)] = obj
    allowed[("_codecs", "encode")] = _codecs_encode
    allowed.update(_numpy_globals())
    return allowed


def _codecs_encode(obj, encoding="utf-8", errors="strict"):
    # protocol-2 pickles written by Python 3 store bytes as _codecs.encode(str, 'latin1')
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1", "utf-8", "utf8", "ascii"):
        raise _Fail("unsupported _codecs.encode call in pickle")
    return obj.encode(encoding, errors)


_ALLOWED = _build_allowed()


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals in _ALLOWED; everything else is refused before it is looked up."""

    def __init__(self, file, persistent_load=None):
        super().__init__(file, encoding="latin1")
        self._persistent = persistent_load

    def find_class(self, module, name):
        obj = _ALLOWED.get((module, name))
        if obj is None:
            raise _Refused(
                f"refused to unpickle: the file calls {module}.{name}, which a weights file never needs "
                f"(only tensor/array reconstruction is allowed); nothing from the file was executed")
        return obj

    def persistent_load(self, pid):
        if self._persistent is None:
            raise _Fail("pickle refers to external (persistent) objects, but this is not a PyTorch file")
        return self._persistent(pid)


def _decode(s):
    return s.decode("ascii") if isinstance(s, bytes) else s


# ----------------------------------------------------------------------------------------------------------
# format readers
# ----------------------------------------------------------------------------------------------------------

def _read_exact_into(f, arr, what):
    mv = memoryview(arr).cast("B")
    n = mv.nbytes
    got = 0
    while got < n:
        k = f.readinto(mv[got:])
        if not k:
            raise _Fail(f"file is truncated: {what} needs {n} bytes, only {got} left")
        got += k


def _remaining(f):
    try:
        return os.fstat(f.fileno()).st_size - f.tell()
    except (AttributeError, OSError, io.UnsupportedOperation):
        return f.getbuffer().nbytes - f.tell() if isinstance(f, io.BytesIO) else None


def _read_storage(f, storage, nbytes, big_endian, what):
    raw_dt = _raw_dtype(storage.dtype)
    if nbytes != storage.nbytes:
        raise _Fail(f"{what} holds {nbytes} bytes, expected {storage.nbytes} "
                    f"({storage.numel} x {raw_dt.itemsize}; corrupt file)")
    left = _remaining(f)
    if left is not None and nbytes > left:  # check before allocating: a corrupt size must not exhaust memory
        raise _Fail(f"file is truncated: {what} needs {nbytes} bytes, only {max(left, 0)} left")
    arr = np.empty(storage.numel, dtype=raw_dt)
    _read_exact_into(f, arr, what)
    if big_endian and raw_dt.itemsize > 1:
        arr.byteswap(inplace=True)
    storage.data = arr
    return arr


class _StorageTable:
    """persistent_load for both torch formats: records storages by key."""

    def __init__(self, legacy):
        self.legacy = legacy
        self.storages = {}
        self.views = {}

    def __call__(self, pid):
        if not isinstance(pid, tuple) or not pid:
            raise _Fail("unexpected persistent id in pickle (not a PyTorch file?)")
        typename = _decode(pid[0])
        if typename == "module":
            raise _Refused("the file holds a pickled model object (torch.save(model)), not a state dict; "
                           "save model.state_dict() instead")
        if typename != "storage":
            raise _Fail(f"unknown persistent id type {typename!r}")
        if self.legacy:
            if len(pid) != 6:
                raise _Fail("malformed storage record in legacy pickle")
            _, stype, key, location, numel, view_meta = pid
        else:
            if len(pid) != 5:
                raise _Fail("malformed storage record in zip pickle")
            _, stype, key, location, numel = pid
            view_meta = None
        if not isinstance(stype, _StorageType):
            raise _Fail(f"storage of unsupported type {stype!r}")
        key = _decode(key)
        st = self.storages.get(key)
        if st is None:
            if not isinstance(numel, int) or numel < 0:
                raise _Fail("storage with an invalid size (corrupt file)")
            st = self.storages[key] = _Storage(key, stype.dtype, numel, _decode(location))
        if view_meta is not None:
            view_key, offset, view_size = view_meta
            view_key = _decode(view_key)
            if view_key not in self.views:
                if offset < 0 or view_size < 0 or offset + view_size > st.numel:
                    raise _Fail("storage view outside its root storage (corrupt file)")
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
        raise _Fail("file is empty")
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


def _load_legacy(f):
    up = _RestrictedUnpickler(f)
    magic = up.load()
    if magic != LEGACY_MAGIC_NUMBER:
        raise _Fail("invalid magic number (corrupt file)")
    version = _RestrictedUnpickler(f).load()
    if version != LEGACY_PROTOCOL_VERSION:
        raise _Fail(f"unsupported legacy protocol version {version!r}")
    sys_info = _RestrictedUnpickler(f).load()
    big_endian = isinstance(sys_info, dict) and sys_info.get("little_endian", True) is False
    table = _StorageTable(legacy=True)
    obj = _RestrictedUnpickler(f, table).load()
    keys = _RestrictedUnpickler(f).load()
    if not isinstance(keys, list):
        raise _Fail("storage key list missing (corrupt file)")
    for key in keys:
        key = _decode(key)
        st = table.storages.get(key)
        if st is None:
            raise _Fail(f"storage {key!r} listed but never used by the pickle (corrupt file)")
        hdr = f.read(8)
        if len(hdr) != 8:
            raise _Fail(f"file is truncated: storage {key!r} is missing")
        numel = struct.unpack(">q" if big_endian else "<q", hdr)[0]
        nbytes = numel * _raw_dtype(st.dtype).itemsize
        _read_storage(f, st, nbytes, big_endian, f"storage {key!r}")
    missing = [k for k, s in table.storages.items() if s.data is None]
    if missing:
        raise _Fail(f"storage {missing[0]!r} is used but has no data (corrupt file)")
    return obj


def _zip_data_offset(f, info):
    """Absolute offset of a STORED member's bytes (local header is 30 bytes + name + extra)."""
    f.seek(info.header_offset)
    hdr = f.read(30)
    if len(hdr) != 30 or hdr[:4] != b"PK\x03\x04":
        raise _Fail(f"zip member {info.filename!r} has a bad local header (corrupt file)")
    name_len, extra_len = struct.unpack("<HH", hdr[26:30])
    return info.header_offset + 30 + name_len + extra_len


def _load_zip(f):
    try:
        zf = zipfile.ZipFile(f)
    except zipfile.BadZipFile as e:
        raise _Fail(f"truncated or corrupt zip archive ({e})")
    with zf:
        names = zf.namelist()
        pkl = [n for n in names if n == "data.pkl" or n.endswith("/data.pkl")]
        if not pkl:
            if any(n.endswith("/code/") or "/code/" in n for n in names):
                raise _Fail("this is a TorchScript archive (torch.jit.save), not a state dict")
            raise _Fail("zip archive without data.pkl: not a PyTorch checkpoint")
        pkl = min(pkl, key=len)
        prefix = pkl[: -len("data.pkl")]
        if any(n.startswith(prefix + "code/") for n in names):
            raise _Fail("this is a TorchScript archive (torch.jit.save), not a state dict")
        big_endian = False
        if prefix + "byteorder" in names:
            order = zf.read(prefix + "byteorder")
            if order not in (b"little", b"big"):
                raise _Fail(f"unknown byte order {order!r}")
            big_endian = order == b"big"
        try:
            data_pkl = zf.read(pkl)
        except (zipfile.BadZipFile, zlib.error) as e:
            raise _Fail(f"corrupt zip member {pkl!r} ({e})")
        table = _StorageTable(legacy=False)
        obj = _RestrictedUnpickler(io.BytesIO(data_pkl), table).load()
        infos = {i.filename: i for i in zf.infolist()}
        for key, st in table.storages.items():
            name = f"{prefix}data/{key}"
            info = infos.get(name)
            if info is None:
                raise _Fail(f"storage record {name!r} is missing from the archive (corrupt file)")
            what = f"storage record {name!r}"
            if info.compress_type == zipfile.ZIP_STORED:
                f.seek(_zip_data_offset(f, info))
                arr = _read_storage(f, st, info.file_size, big_endian, what)
                if zlib.crc32(memoryview(arr).cast("B")) != info.CRC:
                    raise _Fail(f"{what} fails its CRC check (corrupt file)")
            else:  # not written by torch, but a re-zipped archive is still a valid zip
                buf = zf.read(name)
                _read_storage(io.BytesIO(buf), st, len(buf), big_endian, what)
        return obj


def _load_pickle(f):
    obj = _RestrictedUnpickler(f).load()
    return obj


def _materialize(obj, max_bytes=None, seen=None):
    """Replace every _TensorRef in nested dicts/lists/tuples by its numpy array (in place where possible)."""
    if isinstance(obj, _TensorRef):
        return obj.materialize(max_bytes)
    if isinstance(obj, (_Storage, _StorageView)):
        raise _Fail("the file holds a bare storage object, which is not supported")
    if seen is None:
        seen = set()
    if isinstance(obj, (dict, list, tuple)):
        if id(obj) in seen:
            return obj
        seen.add(id(obj))
    if isinstance(obj, dict):
        for k, v in obj.items():
            nv = _materialize(v, max_bytes, seen)
            if nv is not v:
                obj[k] = nv
        return obj
    if isinstance(obj, list):
        for i, v in enumerate(obj):
            nv = _materialize(v, max_bytes, seen)
            if nv is not v:
                obj[i] = nv
        return obj
    if isinstance(obj, tuple):
        items = [_materialize(v, max_bytes, seen) for v in obj]
        if any(a is not b for a, b in zip(items, obj)):
            return type(obj)(items) if type(obj) is tuple else tuple(items)
        return obj
    return obj


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
    except _Fail as e:
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
            raise _Fail("PyTorch tar format (torch < 0.1.10) is not supported")
        if fmt == "unknown":
            raise _Fail(_describe_unknown(f))
        return fmt

    return _with_errors(path, run)


def load_checkpoint(path):
    """Read a checkpoint; return ``(obj, fmt)`` with every tensor replaced by a numpy array."""
    path = _check_path(path)

    def run(f):
        fmt = _open_format(f)
        if fmt == "torch-zip":
            obj = _load_zip(f)
        elif fmt == "torch-legacy":
            obj = _load_legacy(f)
        elif fmt == "pickle":
            obj = _load_pickle(f)
        elif fmt == "torch-tar":
            raise _Fail("PyTorch tar format (torch < 0.1.10) is not supported")
        else:
            raise _Fail(_describe_unknown(f))
        # no tensor may be larger than the file allows, except through stride-0 expansion of a small storage
        # (legal in torch, absurd in a weights file); the cap keeps a hostile file from exhausting memory
        max_bytes = 8 * os.fstat(f.fileno()).st_size + (256 << 20)
        return _materialize(obj, max_bytes), fmt

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

    Raises _Fail (internal) when there is none.
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
        raise _Fail(f"no state dict found: a dict with keys {', '.join(keys)}{'...' if len(obj) > 6 else ''} "
                    f"that is neither name->tensor nor wraps one under {'/'.join(WRAPPER_KEYS)}{hint}")
    raise _Fail(f"no state dict found: the file holds a {type(obj).__name__}, not a dict of tensors")


def read_state_dict(path):
    """Read ``path`` (any supported format) and return ``(OrderedDict[name, np.ndarray], CheckpointInfo)``.

    Unwraps ``{"state_dict"|"model"|"net": {...}}`` and strips a ``module.`` prefix carried by every key.
    """
    obj, fmt = load_checkpoint(path)
    path = os.fspath(path)
    try:
        state, wrapper = find_state_dict(obj)
    except _Fail as e:
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
