"""Which weights a command uses when not told, and the network built from them.

``infer``, ``adapt``, ``doctor``, the Python API and the tools share these rules: ``--model``; else upstream's
checkpoint under ``pretrain_models/`` (``.pkl`` converted, or ``.pt`` read directly); else, except for the
upstream presets, this project's demo weights shipped in the repository.
"""
import os
import time

from .video_io import InputError

MODEL_DIR = "pretrain_models"
DEFAULT_CHECKPOINT = "self_blind_vsr_gaussian"
# weights trained by this project's Demo_CPU recipe, shipped in the repository (pretrain_models/README.md)
DEMO_WEIGHTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), MODEL_DIR,
                            "sbvsr_demo_x4.pkl")
PRESETS = {  # name -> (dataset folder under --data-root, checkpoint name); upstream-conventions §3
    "Gaussian_REDS4": ("REDS4_BlurDown_Gaussian", "self_blind_vsr_gaussian"),
    "Gaussian_Vid4": ("Vid4_BlurDown_Gaussian", "self_blind_vsr_gaussian"),
    "Gaussian_SPMCS": ("SPMCS_BlurDown_Gaussian", "self_blind_vsr_gaussian"),
    "Realistic_REDS4": ("REDS4_BlurDown_Realistic", "self_blind_vsr_realistic"),
}


def default_model_paths(checkpoint=DEFAULT_CHECKPOINT):
    """The converted and the PyTorch file of an upstream checkpoint, relative to the working folder."""
    return [os.path.join(MODEL_DIR, checkpoint + ext) for ext in (".pkl", ".pt")]


def resolve_model(model=None, preset=None, allow_untrained=False):
    """The weights file to load: ``model`` (``--model``); else upstream's .pkl/.pt of ``preset``'s checkpoint
    or the default one; else (not for presets, which reproduce upstream's numbers) the shipped demo weights;
    else None (seeded untrained network) when ``allow_untrained``."""
    if model:
        candidates = [model]
    elif preset:
        candidates = default_model_paths(PRESETS[preset][1])
    else:
        candidates = default_model_paths() + [DEMO_WEIGHTS]
    found = next((p for p in candidates if os.path.isfile(p)), None)
    if found or (allow_untrained and not model):
        return found
    if model and os.path.isdir(model):
        raise InputError(model, "is a folder; --model takes a weights file")
    stem = os.path.splitext(candidates[0])[0]
    nor = f" (nor {', '.join(candidates[1:])})" if len(candidates) > 1 else ""
    raise InputError(candidates[0], f"model file not found{nor}. Put the upstream checkpoint at {stem}.pt (it loads "
                                    f"directly) or convert it once: python tools/convert_weights.py {stem}.pt "
                                    f"{stem}.pkl")


def describe_weights(path):
    """Which weights a run uses, for its first line."""
    if path is None:
        return "an UNTRAINED network (seed 0)"
    if os.path.isfile(DEMO_WEIGHTS) and os.path.samefile(path, DEMO_WEIGHTS):
        return f"this project's demo weights {path} (Demo_CPU recipe, not upstream's; see pretrain_models/README.md)"
    return f"weights {path}"


def build_model(path, log, allow_nonfinite=False):
    """PWC_Recons with the weights of ``path``, built in the configuration the file records (the released one
    for upstream files), or the released configuration untrained (seed 0) when ``path`` is None."""
    from . import runtime
    from .config import ModelConfig
    from .weights import load_model

    if path is None:
        runtime.jittor().set_global_seed(0)
        return ModelConfig().build()
    start = time.perf_counter()
    net, info, config = load_model(path, allow_nonfinite)
    log(f"Loaded {info['keys']} tensors ({info['params']:,} parameters, {info['format']}, {config.describe()}) "
        f"from {path} in {time.perf_counter() - start:.1f}s")
    return net
