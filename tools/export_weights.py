"""Export a trained model as a compact inference weights file (how the shipped demo weights were made).

    python tools/export_weights.py experiment/Demo_CPU/model/model_best.pkl pretrain_models/sbvsr_demo_x4.pkl \\
        --fp16 --card card.json

Reads any checkpoint ``load_weights`` reads (the trainer's included), keeps only the model's tensors and the
model configuration the checkpoint records, optionally stores them as float16 (half the size; they load into
float32 parameters), and adds a ``card`` record (a JSON file: recipe, data, scores) to the meta data. The
output is written to a temporary name and renamed; an existing file is replaced only with ``--force``.
"""
import argparse
import json
import os
import pickle
import sys

import numpy as np

from jittor_sbvsr.checkpoint import CheckpointError
from jittor_sbvsr.config import META_KEY, ModelConfig
from jittor_sbvsr.files import write_bytes
from jittor_sbvsr.weights import read_weights

PROG = "export_weights"


def export(src, out, fp16=False, card=None):
    """Write ``{"state_dict", "meta"}`` for the model in ``src``; returns the number of bytes written."""
    state, kind, info = read_weights(src, "full")
    config = ModelConfig.from_meta(info.meta)
    dtype = np.float16 if fp16 else np.float32
    tensors = {}
    for key, value in state.items():
        cast = value.astype(dtype)
        if not np.all(np.isfinite(cast)):
            raise CheckpointError(src, f"{key}: not finite as {np.dtype(dtype).name}")
        tensors[key] = cast
    meta = {META_KEY: config.to_dict(), "source": os.path.basename(src), "dtype": np.dtype(dtype).name,
            "card": card or {}}
    data = pickle.dumps({"state_dict": tensors, "meta": meta}, protocol=4)
    write_bytes(out, data)
    return len(data)


def main(argv=None):
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    p.add_argument("checkpoint")
    p.add_argument("out")
    p.add_argument("--fp16", action="store_true", help="store float16 tensors")
    p.add_argument("--card", help="JSON file whose content is stored as meta['card']")
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    args = p.parse_args(argv)
    try:
        if os.path.exists(args.out) and not args.force:
            raise CheckpointError(args.out, "exists; pass --force to replace it")
        card = None
        if args.card:
            with open(args.card, encoding="utf-8") as f:
                card = json.load(f)
        size = export(args.checkpoint, args.out, args.fp16, card)
    except (CheckpointError, OSError, ValueError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        sys.exit(2)
    print(f"{args.out}: {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
