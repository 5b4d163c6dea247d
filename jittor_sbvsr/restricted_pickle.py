"""Restricted unpickling for weights files: what a pickle inside a checkpoint may build, and how much.

A checkpoint's pickle only needs to describe data: dicts, lists and tuples of numbers and strings, tensors and
numpy arrays. This unpickler runs the opcodes with the standard library's pure-Python machinery, but:

* globals resolve only through an allow-list, to stand-ins (never to the real module attribute); nothing is
  imported and a stand-in cannot be changed by a file (no instance dict, BUILD refused on it);
* only stand-in callables can be called; object construction (NEWOBJ, INST, OBJ), extension codes, sets and
  out-of-band buffers are refused;
* numpy arrays, dtypes and scalars are placeholders until ``materialize``: only bool, integer and float
  dtypes are ever built, and an array's byte count must equal the bytes it is built from;
* containers nest at most MAX_DEPTH levels and are built bottom-up (a container cannot change once it is
  inside another, nor contain itself), so every later walk, hash or comparison stays shallow and acyclic;
* every length field is checked against the bytes left in the file before anything is allocated, and what
  loading allocates beyond reading the file is charged to a Budget proportional to the file's size.

Failures raise ``Fail`` (a reason without the file name; ``Refused`` for forbidden content).
This module must not import torch or jittor.
"""
import math
import pickle
import struct
from collections import OrderedDict

import numpy as np

__all__ = ["Fail", "Refused", "Budget", "Reader", "Frozen", "Callable", "Deferred", "RestrictedUnpickler",
           "materialize", "numpy_globals", "supported_dtype", "MAX_DEPTH", "MAX_NDIM"]

MAX_DEPTH = 32   # container nesting; a state dict needs 3 levels, a trainer checkpoint about 6
MAX_NDIM = 32    # numpy's own limit on array dimensions
OP_COST = 64     # bytes charged per opcode: a memo entry, a MARK's list or a small object
NODE_COST = 192  # bytes charged per container: the object and its entry in the nesting table
_CHARGE_EVERY = 4096

# numpy dtype codes (kind + item size, without byte order) that may be built: bool, integers, floats
NUMERIC_CODES = frozenset(["b1", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f2", "f4", "f8"])
SUPPORTED = "bool, integer, float16/32/64"


class Fail(Exception):
    """Why a file cannot be loaded, without the file name (the API boundary adds it)."""


class Refused(Fail):
    """The file asks for something a weights file never needs."""


def supported_dtype(dt):
    """True for the numpy dtypes a weights file may hold (bool, integers, float16/32/64, either byte order)."""
    return isinstance(dt, np.dtype) and f"{dt.kind}{dt.itemsize}" in NUMERIC_CODES


class Budget:
    """Bytes the loader may allocate for one file beyond reading it: storages, inflated zip members, array
    copies, call results and the pickle's own objects are charged here. A multiple of the file's size, so a
    small file can never make the loader allocate much more than its own size."""

    def __init__(self, file_size):
        self.size, self.limit = file_size, 4 * file_size + (64 << 20)
        self.left = self.limit

    def charge(self, nbytes, what):
        if nbytes > self.left:
            raise Fail(f"{what} needs {nbytes:,} more bytes, implausibly large for a file of {self.size:,} bytes "
                       f"(loading it may allocate at most {self.limit:,}; hostile or corrupt file)")
        self.left -= nbytes


class Reader:
    """A seekable binary file that never reads past ``size``: a length field larger than what is left raises
    Fail before anything is allocated."""

    def __init__(self, f, size):
        self._f, self.size = f, size
        self._pos = f.tell()

    def left(self):
        return self.size - self._pos

    def require(self, n):
        """Fail unless ``n`` more bytes are left."""
        if n > self.size - self._pos:
            raise Fail(f"file is truncated or corrupt: {n:,} more bytes needed, only {max(self.left(), 0):,} "
                       f"left")

    def read(self, n=-1):
        if n is None or n < 0:
            n = max(self.left(), 0)
        self.require(n)
        data = self._f.read(n)
        self._pos += len(data)
        if len(data) != n:
            raise Fail(f"file is truncated: {n:,} more bytes needed, only {len(data):,} left")
        return data

    def readinto(self, buf):
        mv = memoryview(buf).cast("B")
        self.require(mv.nbytes)
        got = 0
        while got < mv.nbytes:
            k = self._f.readinto(mv[got:])
            if not k:
                raise Fail(f"file is truncated: {mv.nbytes:,} more bytes needed, only {got:,} left")
            got += k
            self._pos += k
        return got

    def readline(self):
        line = self._f.readline()
        self._pos += len(line)
        return line

    def seek(self, offset, whence=0):
        self._pos = self._f.seek(offset, whence)
        return self._pos

    def tell(self):
        return self._pos

    def seekable(self):
        return True


class Frozen:
    """Base of the stand-ins handed to pickles: no instance dict, no attribute can be set after __init__."""

    __slots__ = ()

    def __init__(self, **fields):
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} stand-ins are read-only")

    __delattr__ = __setattr__


class Callable(Frozen):
    """An allow-listed callable: ``fn`` receives the pickle's arguments and validates them itself."""

    __slots__ = ("name", "fn")

    def __init__(self, name, fn):
        super().__init__(name=name, fn=fn)

    def __call__(self, *args):
        return self.fn(*args)

    def __repr__(self):
        return self.name


class Deferred:
    """A placeholder built by the pickle and turned into its value by ``materialize`` (once, cached)."""

    __slots__ = ("_value",)

    def __init__(self):
        self._value = None

    def materialize(self, budget):
        if self._value is None:
            self._value = self._build(budget)
        return self._value

    def _build(self, budget):
        raise NotImplementedError

    def set_state(self, state):
        """BUILD opcode; refused unless the placeholder takes one."""
        raise Refused(f"refused to unpickle: the file sets the state of a {type(self).__name__}, which a weights "
                      f"file never does")


# ----------------------------------------------------------------------------------------------------------
# numpy stand-ins
# ----------------------------------------------------------------------------------------------------------

class DTypeRef(Deferred):
    """``numpy.dtype(code, align, copy)`` plus its BUILD state. Only a bool, integer or float type code with
    the plain state numpy pickles for those (a byte order, nothing else) resolves: fields, sub-arrays and
    object references never reach numpy."""

    __slots__ = ("code", "order", "built")

    def __init__(self, code, align=False, copy=True):
        super().__init__()
        if not isinstance(code, str) or len(code) > 16:
            raise Fail("numpy dtype with an invalid type code (corrupt file)")
        self.code, self.order, self.built = code, "=", False

    def set_state(self, state):
        if self.built:
            raise Refused("refused to unpickle: the file sets a numpy dtype's state twice")
        self.built = True
        plain = (isinstance(state, tuple) and len(state) in (8, 9) and state[0] in (3, 4)
                 and state[1] in ("<", ">", "|", "=") and state[2:8] == (None, None, None, -1, -1, 0)
                 and (len(state) == 8 or state[8] is None))
        self.order = state[1] if plain else None

    def _build(self, budget):
        if self.code not in NUMERIC_CODES or self.order is None:
            raise Fail(f"numpy dtype {self.code!r} is not supported (only {SUPPORTED} data)")
        return np.dtype(self.code).newbyteorder(self.order) if self.order in "<>" else np.dtype(self.code)


class ArrayRef(Deferred):
    """A numpy array (or scalar) described by the file: dtype, shape and the bytes it is built from."""

    __slots__ = ("dtype", "shape", "fortran", "data", "scalar")

    def __init__(self, dtype=None, shape=None, data=None, fortran=False, scalar=False):
        super().__init__()
        self.dtype, self.shape, self.data, self.fortran, self.scalar = dtype, shape, data, fortran, scalar

    def set_state(self, state):
        """ndarray.__setstate__'s tuple ``(1, shape, dtype, is_fortran, rawdata)``, accepted once."""
        if self.data is not None:
            raise Refused("refused to unpickle: the file sets a numpy array's state twice")
        if not (isinstance(state, tuple) and len(state) == 5 and state[0] == 1):
            raise Fail("numpy array with an unsupported state (corrupt file)")
        _, self.shape, self.dtype, self.fortran, self.data = state
        if self.data is None:
            raise Fail("numpy array without data (corrupt file)")

    def _build(self, budget):
        if not isinstance(self.dtype, DTypeRef):
            raise Fail("numpy array without a dtype (corrupt file)")
        dt = self.dtype.materialize(budget)
        shape = _shape(self.shape, "numpy array")
        data = self.data
        if isinstance(data, str):  # a pickle written by Python 2 holds the bytes as a latin-1 str
            budget.charge(len(data), "a numpy array")
            data = data.encode("latin1")
        if not isinstance(data, (bytes, bytearray)):
            raise Fail(f"numpy array built from a {type(data).__name__}, not bytes (corrupt file)")
        nbytes = math.prod(shape) * dt.itemsize
        if len(data) != nbytes:
            raise Fail(f"numpy array of shape {list(shape)} and dtype {dt} needs {nbytes:,} bytes but is built "
                       f"from {len(data):,} (corrupt file)")
        flat = np.frombuffer(data, dtype=dt)
        if self.scalar:
            return flat[0]
        if isinstance(data, bytes):  # numpy's own loader copies: the array must be writeable
            budget.charge(nbytes, "a numpy array")
            flat = flat.copy()
        return flat.reshape(shape, order="F" if self.fortran else "C")


class _NdarrayClass(Frozen):
    """``numpy.ndarray``: only an argument of ``_reconstruct``, never called."""

    __slots__ = ()

    def __repr__(self):
        return "numpy.ndarray"


_NDARRAY = _NdarrayClass()


def _shape(shape, what):
    if (not isinstance(shape, tuple) or len(shape) > MAX_NDIM
            or not all(type(n) is int and n >= 0 for n in shape)):
        raise Fail(f"{what} with an invalid shape (corrupt file)")
    return shape


def _reconstruct(cls, shape, typecode):
    if cls is not _NDARRAY:
        raise Refused(f"refused to unpickle: numpy array of class {cls!r} (only numpy.ndarray is allowed)")
    return ArrayRef()


def _scalar(dtype, data=None):
    return ArrayRef(dtype=dtype, shape=(), data=data, scalar=True)


def _frombuffer(buf, dtype, shape, order="C"):
    return ArrayRef(dtype=dtype, shape=shape, data=buf, fortran=order == "F")


def numpy_globals():
    """Allow-list entries for numpy's array, dtype and scalar pickles (numpy 1.x ``numpy.core`` and 2.x
    ``numpy._core`` module names)."""
    allowed = {("numpy", "ndarray"): _NDARRAY, ("numpy", "dtype"): Callable("numpy.dtype", DTypeRef)}
    for prefix in ("numpy.core", "numpy._core"):
        for module, name, fn in (("multiarray", "_reconstruct", _reconstruct), ("multiarray", "scalar", _scalar),
                                 ("numeric", "_frombuffer", _frombuffer)):
            allowed[(f"{prefix}.{module}", name)] = Callable(f"{prefix}.{module}.{name}", fn)
    return allowed


# ----------------------------------------------------------------------------------------------------------
# the unpickler
# ----------------------------------------------------------------------------------------------------------

class _Stop(Exception):
    def __init__(self, value):
        self.value = value


def _refuse_opcode(what):
    def load(self):
        raise Refused(f"refused to unpickle: the file uses {what}, which a weights file never needs")
    return load


class RestrictedUnpickler(pickle._Unpickler):
    """Unpickles one pickle from a Reader: globals from ``allowed`` only, calls to Callable stand-ins only,
    nesting and allocations bounded (see the module docstring). ``persistent_load(pid)`` resolves persistent
    ids (PyTorch storages); without it a pickle that uses them is refused."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, reader, allowed, budget, persistent_load=None):
        super().__init__(reader, encoding="latin1")
        self._reader, self._allowed, self._budget, self._persistent = reader, allowed, budget, persistent_load
        # id -> [object, nesting depth, already inside another container]; holding the object keeps ids unique
        self._nodes = {}
        self._charged = 0  # NODE_COST of the containers charged so far

    def load(self):
        self.read, self.readline = self._reader.read, self._reader.readline
        self.metastack, self.stack = [], []
        self.append = self.stack.append
        read, dispatch = self.read, self.dispatch
        ops = 0
        try:
            while True:
                op = read(1)
                ops += 1
                if ops % _CHARGE_EVERY == 0:
                    self._budget.charge(_CHARGE_EVERY * OP_COST + len(self._nodes) * NODE_COST - self._charged,
                                        f"unpickling ({ops:,} opcodes, {len(self._nodes):,} containers)")
                    self._charged = len(self._nodes) * NODE_COST
                handler = dispatch.get(op[0])
                if handler is None:
                    raise Fail(f"unknown pickle opcode {op!r} (corrupt file)")
                handler(self)
        except _Stop as stop:
            return stop.value

    def find_class(self, module, name):
        obj = self._allowed.get((module, name))
        if obj is None:
            raise Refused(
                f"refused to unpickle: the file calls {module}.{name}, which a weights file never needs "
                f"(only tensor/array reconstruction is allowed); nothing from the file was executed")
        return obj

    def persistent_load(self, pid):
        if self._persistent is None:
            raise Fail("pickle refers to external (persistent) objects, but this is not a PyTorch file")
        return self._persistent(pid)

    # nesting: every container is registered with its depth; items become "used" once inside another

    def _use(self, item):
        node = self._nodes.get(id(item))
        if node is None:
            return 0
        node[2] = True
        return node[1]

    def _depth(self, items):
        """Nesting depth of a container holding ``items``, which are now inside it."""
        depth = 1 + max((self._use(x) for x in items), default=0)
        if depth > MAX_DEPTH:
            raise Fail(f"objects nested more than {MAX_DEPTH} levels deep (a weights file needs a few; hostile "
                       f"or corrupt file)")
        return depth

    def _register(self, obj, items):
        self._nodes[id(obj)] = [obj, self._depth(items), False]
        return obj

    def _grow(self, container, kind, items):
        node = self._nodes.get(id(container))
        if node is None or not isinstance(container, kind):
            raise Fail(f"pickle adds items to a {type(container).__name__} (corrupt file)")
        if node[2] or any(x is container for x in items):
            raise Refused("refused to unpickle: a container is changed after it was put inside another one, or "
                          "put inside itself (a pickler never does this)")
        node[1] = max(node[1], self._depth(items))

    def load_stop(self):
        raise _Stop(self.stack.pop())

    def _empty(kind):
        def load(self):
            obj = kind()
            self._nodes[id(obj)] = [obj, 1, False]
            self.append(obj)
        return load

    def load_list(self):
        items = self.pop_mark()
        self.append(self._register(list(items), items))

    def load_tuple(self):
        items = self.pop_mark()
        self.append(self._register(tuple(items), items))

    def _tuple_n(n):
        def load(self):
            items = self.stack[-n:]
            del self.stack[-n:]
            if len(items) != n:
                raise Fail("pickle stack underflow (corrupt file)")
            self.append(self._register(tuple(items), items))
        return load

    def load_dict(self):
        items = self.pop_mark()
        if len(items) % 2:
            raise Fail("odd number of items for a dict (corrupt file)")
        d = self._register({}, items)  # checks the keys' depth before they are hashed
        for i in range(0, len(items), 2):
            d[items[i]] = items[i + 1]
        self.append(d)

    def load_append(self):
        item = self.stack.pop()
        self._grow(self.stack[-1], list, (item,))
        self.stack[-1].append(item)

    def load_appends(self):
        items = self.pop_mark()
        self._grow(self.stack[-1], list, items)
        self.stack[-1].extend(items)

    def load_setitem(self):
        value, key = self.stack.pop(), self.stack.pop()
        self._grow(self.stack[-1], dict, (key, value))
        self.stack[-1][key] = value

    def load_setitems(self):
        items = self.pop_mark()
        if len(items) % 2:
            raise Fail("odd number of items for a dict (corrupt file)")
        target = self.stack[-1]
        self._grow(target, dict, items)
        for i in range(0, len(items), 2):
            target[items[i]] = items[i + 1]

    def load_reduce(self):
        args = self.stack.pop()
        func = self.stack[-1]
        if not isinstance(func, Callable):
            raise Refused(f"refused to unpickle: the file calls {_describe(func)}, which is not an allowed "
                          f"function")
        if type(args) is not tuple:
            raise Fail("pickle calls a function without an argument tuple (corrupt file)")
        result = func(*args)
        if isinstance(result, (list, dict, tuple)):
            if id(result) not in self._nodes:
                self._register(result, args)
            self._budget.charge(OP_COST * len(result), f"{func.name}()")
        elif isinstance(result, (bytes, str)):
            self._budget.charge(len(result), f"{func.name}()")
        self.stack[-1] = result

    def load_build(self):
        state = self.stack.pop()
        inst = self.stack[-1]
        if isinstance(inst, Deferred):
            inst.set_state(state)
        elif type(inst) is OrderedDict:
            pass  # torch's state dicts carry a _metadata attribute (module versions) that nothing here needs
        else:
            raise Refused(f"refused to unpickle: the file sets the state of {_describe(inst)}, which a weights "
                          f"file never does")

    def load_frame(self):
        # frames only group the opcodes that follow into reads; the reader already bounds every read
        size, = struct.unpack("<Q", self.read(8))
        self._reader.require(size)

    def load_bytearray8(self):
        n, = struct.unpack("<Q", self.read(8))
        self._reader.require(n)  # before allocating
        buf = bytearray(n)
        self._reader.readinto(buf)
        self.append(buf)

    for _op, _load in [(pickle.STOP, load_stop), (pickle.EMPTY_LIST, _empty(list)),
                       (pickle.EMPTY_DICT, _empty(dict)), (pickle.EMPTY_TUPLE, _empty(tuple)),
                       (pickle.LIST, load_list), (pickle.TUPLE, load_tuple), (pickle.TUPLE1, _tuple_n(1)),
                       (pickle.TUPLE2, _tuple_n(2)), (pickle.TUPLE3, _tuple_n(3)), (pickle.DICT, load_dict),
                       (pickle.APPEND, load_append), (pickle.APPENDS, load_appends),
                       (pickle.SETITEM, load_setitem), (pickle.SETITEMS, load_setitems),
                       (pickle.REDUCE, load_reduce), (pickle.BUILD, load_build), (pickle.FRAME, load_frame),
                       (pickle.BYTEARRAY8, load_bytearray8),
                       (pickle.NEWOBJ, _refuse_opcode("object construction (NEWOBJ)")),
                       (pickle.NEWOBJ_EX, _refuse_opcode("object construction (NEWOBJ_EX)")),
                       (pickle.INST, _refuse_opcode("object construction (INST)")),
                       (pickle.OBJ, _refuse_opcode("object construction (OBJ)")),
                       (pickle.EXT1, _refuse_opcode("an extension code")),
                       (pickle.EXT2, _refuse_opcode("an extension code")),
                       (pickle.EXT4, _refuse_opcode("an extension code")),
                       (pickle.EMPTY_SET, _refuse_opcode("a set")), (pickle.ADDITEMS, _refuse_opcode("a set")),
                       (pickle.FROZENSET, _refuse_opcode("a frozenset")),
                       (pickle.NEXT_BUFFER, _refuse_opcode("an out-of-band buffer")),
                       (pickle.READONLY_BUFFER, _refuse_opcode("an out-of-band buffer"))]:
        dispatch[_op[0]] = _load
    del _op, _load, _tuple_n, _empty


def _describe(obj):
    return repr(obj) if isinstance(obj, Frozen) else f"a {type(obj).__name__}"


# ----------------------------------------------------------------------------------------------------------
# materialisation
# ----------------------------------------------------------------------------------------------------------

def _where(path):
    if not path:
        return "the file's top-level object"
    text = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            text += f"[{part}]"
        else:
            name = part if isinstance(part, str) else repr(part)
            text += ("/" if text else "") + (name if len(name) <= 80 else name[:77] + "...")
    return f"key {text!r}"


def materialize(obj, budget):
    """Replace every placeholder inside ``obj`` (dicts, lists, tuples) by its value, and every stand-in by its
    name (``torch.float16`` stored as a value becomes ``"torch.float16"``); dicts and lists are updated in
    place. A failure names the key path of the placeholder, e.g. ``key 'model/conv.weight'``. Recursion is
    safe: the unpickler bounds nesting and forbids cycles."""
    done = {}  # id -> result, for containers shared through the pickle's memo

    def walk(x, path):
        if isinstance(x, Deferred):
            try:
                return x.materialize(budget)
            except Fail as e:
                raise type(e)(f"{_where(path)}: {e}") from None
        if isinstance(x, Frozen):
            return repr(x)
        if not isinstance(x, (dict, list, tuple)):
            return x
        if id(x) in done:
            return done[id(x)]
        if isinstance(x, dict):
            for k, v in x.items():
                if isinstance(k, Deferred):
                    raise Fail(f"{_where(path)}: a dict keyed by a tensor or array (corrupt or unsupported file)")
                nv = walk(v, path + (k,))
                if nv is not v:
                    x[k] = nv
            result = x
        elif isinstance(x, list):
            for i, v in enumerate(x):
                nv = walk(v, path + (i,))
                if nv is not v:
                    x[i] = nv
            result = x
        else:
            items = [walk(v, path + (i,)) for i, v in enumerate(x)]
            result = tuple(items) if any(a is not b for a, b in zip(items, x)) else x
        done[id(x)] = result
        return result

    return walk(obj, ())
