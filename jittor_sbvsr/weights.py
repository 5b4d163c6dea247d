"""Loading pretrained weights: upstream PyTorch files, converted ``.pkl`` files and this project's checkpoints.

One entry point for every loader in the project::

    from jittor_sbvsr.weights import load_weights
    load_weights(model, "pretrain_models/self_blind_vsr_gaussian.pt")      # PyTorch file, read without torch
    load_weights(model, "pretrain_models/self_blind_vsr_gaussian.pkl")     # converted by tools/convert_weights.py
    load_weights(model, "pretrain_models/network-default.pytorch")         # PWC-Net only -> flow_net.moduleNetwork

Kinds:

* ``"full"``: the 272 keys of the whole ``PWC_Recons`` model (tests/data/state_dict_keys.tsv);
* ``"pwc"``: the 126 PWC-Net keys without the ``flow_net.moduleNetwork.`` prefix, in sniklaus' 2018 ``module*``
  naming (``moduleExtractor.moduleOne.0.weight``) or his later ``net*`` naming (``netExtractor.netOne.0.weight``,
  mapped back to ``module*``);
* ``"auto"``: ``"pwc"`` when every key looks like a PWC-Net key, else ``"full"``.

Everything here except ``load_weights`` and ``load_model`` is numpy-only: importing this module does not
import Jittor (the converter uses the key table below instead of building the model). Comparing keys and the
strict loading itself are ``state_dict``'s; this module only adds the files and the packaged key table.

The reference key table ``state_dict_keys.tsv`` ships inside the package.
setup.py must list it as package data: ``package_data={"jittor_sbvsr": ["state_dict_keys.tsv"]}``.
"""
import os
import re
from collections import OrderedDict

from .checkpoint import CheckpointError, read_state_dict
from .state_dict import StateDictMismatch, compare_keys, load_state_dict_strict

__all__ = ["load_weights", "load_model", "read_weights", "reference_shapes", "detect_kind", "check_state",
           "pwc_net_to_module_naming", "pwc_module_to_net_naming", "normalize_pwc_keys", "PWC_PREFIX",
           "KEYS_TSV", "KINDS"]

KEYS_TSV = os.path.join(os.path.dirname(os.path.abspath(__file__)), "state_dict_keys.tsv")
PWC_PREFIX = "flow_net.moduleNetwork."
KINDS = ("auto", "full", "pwc")
_PWC_TOP = ("Extractor", "Two", "Thr", "Fou", "Fiv", "Six", "Refiner")
_NET_COMPONENT = re.compile(r"^net(?=[A-Z])")
_MODULE_COMPONENT = re.compile(r"^module(?=[A-Z])")

_TABLE = None


def _table():
    global _TABLE
    if _TABLE is None:
        table = OrderedDict()
        with open(KEYS_TSV, encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                key, shape = line.split("\t")
                dims = shape.strip().strip("[]").strip()
                table[key] = tuple(int(d) for d in dims.split(",")) if dims else ()
        _TABLE = table
    return _TABLE


def reference_shapes(kind="full"):
    """OrderedDict key -> shape tuple of the default (full) model, or of the PWC-Net alone (``kind="pwc"``)."""
    if kind == "full":
        return OrderedDict(_table())
    if kind == "pwc":
        return OrderedDict((k[len(PWC_PREFIX):], s) for k, s in _table().items() if k.startswith(PWC_PREFIX))
    raise ValueError(f"kind must be 'full' or 'pwc', not {kind!r}")


def pwc_net_to_module_naming(key):
    """``netTwo.netUpflow.weight`` -> ``moduleTwo.moduleUpflow.weight`` (each ``net<Upper>`` component)."""
    return ".".join(_NET_COMPONENT.sub("module", part) for part in key.split("."))


def pwc_module_to_net_naming(key):
    """``moduleTwo.moduleUpflow.weight`` -> ``netTwo.netUpflow.weight`` (sniklaus' later naming)."""
    return ".".join(_MODULE_COMPONENT.sub("net", part) for part in key.split("."))


def _looks_pwc(key):
    top = key.split(".", 1)[0]
    return any(top in ("module" + t, "net" + t) for t in _PWC_TOP)


def detect_kind(state):
    """'pwc' when every key looks like a PWC-Net key (either naming), else 'full'."""
    return "pwc" if state and all(_looks_pwc(k) for k in state) else "full"


def normalize_pwc_keys(state):
    """Map a PWC-Net state dict in ``net*`` naming to the ``module*`` naming; return ``(state, naming)``."""
    if any(_NET_COMPONENT.match(k.split(".", 1)[0]) for k in state):
        mapped = OrderedDict((pwc_net_to_module_naming(k), v) for k, v in state.items())
        if len(mapped) != len(state):
            raise ValueError("PWC-Net keys collide after mapping net* -> module* naming")
        return mapped, "net"
    return state, "module"


def check_state(state, kind):
    """KeyReport of ``state`` (key -> array) against the packaged table of ``kind`` ('full' or 'pwc')."""
    return compare_keys(state, reference_shapes(kind), kind)


def read_weights(path, kind="auto", allow_nonfinite=False):
    """Read any supported weights file; return ``(state, kind, info)`` with keys in this project's naming.

    ``state`` is an OrderedDict key -> numpy array (dtype as stored in the file). For ``kind="pwc"`` the keys
    are the PWC-Net's own (``moduleExtractor...``), ``net*`` naming mapped to ``module*``. Raises
    CheckpointError, also for NaN or infinite weights unless ``allow_nonfinite``. Keys are not checked here
    (see ``check_state``).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    state, info = read_state_dict(path, allow_nonfinite=allow_nonfinite)
    if kind == "auto":
        kind = detect_kind(state)
    if kind == "pwc":
        if all(k.startswith(PWC_PREFIX) for k in state):  # PWC weights cut out of a full checkpoint
            state = OrderedDict((k[len(PWC_PREFIX):], v) for k, v in state.items())
        try:
            state, naming = normalize_pwc_keys(state)
        except ValueError as e:
            raise CheckpointError(path, str(e)) from None
        info.meta = dict(info.meta, pwc_naming=naming)
    return state, kind, info


def load_weights(model, path, kind="auto", allow_nonfinite=False):
    """Load a weights file strictly into ``model`` (a ``PWC_Recons``).

    ``path``: a converted ``.pkl``, a PyTorch file (zip or legacy format, any extension), or a checkpoint of
    this project's trainer (a pickle whose payload is a dict of arrays, or wraps one under
    ``state_dict``/``model``/``net``). ``kind="pwc"`` (or auto-detected PWC-Net keys) loads into
    ``model.flow_net.moduleNetwork`` only. Arrays are cast to the parameters' dtype (fp16/fp64 files load
    into float32 parameters). Weights holding NaN or infinity are refused unless ``allow_nonfinite``.

    Returns a dict ``{"kind", "format", "keys", "params", "target"}``. Raises CheckpointError (one line naming
    the file) when the file cannot be read or its keys/shapes do not match the model; the strict loader's
    StateDictMismatch is kept as ``__cause__``.
    """
    state, kind, info = read_weights(path, kind, allow_nonfinite)
    return _load_state(model, state, kind, info, path)


def load_model(path, allow_nonfinite=False):
    """(network, load info, ModelConfig) for a full-model weights file: the network is built in the
    configuration the file records (the released one when it records none), then loaded strictly."""
    from .config import ModelConfig

    state, kind, info = read_weights(path, "full", allow_nonfinite)
    try:
        config = ModelConfig.from_meta(info.meta)
    except ValueError as e:
        raise CheckpointError(path, str(e)) from None
    model = config.build()
    return model, _load_state(model, state, kind, info, path), config


def _load_state(model, state, kind, info, path):
    target = model.flow_net.moduleNetwork if kind == "pwc" else model
    try:
        load_state_dict_strict(target, state)
    except StateDictMismatch as e:
        what = "the PWC-Net (model.flow_net.moduleNetwork)" if kind == "pwc" else "the model"
        raise CheckpointError(path, f"{kind} weights do not match {what}: {e}") from e
    return {"kind": kind, "format": info.format, "keys": len(state),
            "params": int(sum(v.size for v in state.values())),
            "target": "flow_net.moduleNetwork" if kind == "pwc" else "model", "meta": info.meta}
