#!/usr/bin/env python
"""Convert upstream PyTorch weights to a plain pickle of numpy arrays, without PyTorch.

    python tools/convert_weights.py IN OUT.pkl [--kind auto|full|pwc] [--allow-partial] [--allow-nonfinite] [--force]

IN may be any PyTorch checkpoint (zip format of torch >= 1.6 or the legacy format of torch < 1.6, e.g. the
upstream ``self_blind_vsr_*.pt`` and PWC-Net's ``network-default.pytorch``), whatever its extension.

OUT is a pickle of ``{"state_dict": OrderedDict[key -> numpy array], "meta": {...}}`` (pickle protocol 5,
Python >= 3.8; arrays keep the file's dtype). ``meta`` records the source file name, its sha256, its format,
the kind, the key and parameter counts. Every key and shape is checked against the model's table
(``jittor_sbvsr/state_dict_keys.tsv``): any missing, unexpected or mis-shaped key is an error, except that
``--allow-partial`` accepts missing keys. ``--kind pwc`` takes the 126-key PWC-Net file in the original
``module*`` naming or the later ``net*`` naming (written out in ``module*`` naming). Weights holding NaN or
infinity are refused unless ``--allow-nonfinite``.

OUT is never overwritten unless ``--force``; it is written to a temporary file in the same folder (created with
the permissions the umask gives any new file) and renamed into place, so an interrupted run leaves no partial
file. Errors are one line on stderr,
``convert_weights: error: <file>: <reason>``, with exit status 2.
"""
import argparse
import hashlib
import os
import pickle
import sys
import time
from collections import Counter, OrderedDict

from jittor_sbvsr.checkpoint import FORMAT_NAMES, CheckpointError
from jittor_sbvsr.files import dump_atomic
from jittor_sbvsr.weights import check_state, read_weights, reference_shapes

PROG = "convert_weights"
OUTPUT_FORMAT_VERSION = 1


class ConvertError(Exception):
    def __init__(self, path, reason):
        super().__init__(f"{path}: {reason}")


def sha256_of(path, chunk=1 << 20):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        buf = bytearray(chunk)
        view = memoryview(buf)
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(view[:n])
    return h.hexdigest()


def write_pickle(obj, out, force):
    """Pickle ``obj`` to ``out`` through a temporary file, fsynced, then moved into place (``files.dump_atomic``);
    without ``force`` an ``out`` that appeared meanwhile is never replaced."""
    try:  # protocol 5: arrays are written from their own buffers, no copies
        dump_atomic(out, lambda f: pickle.dump(obj, f, protocol=5), fsync=True, overwrite=force)
    except FileExistsError:
        raise ConvertError(out, "already exists (use --force to overwrite)") from None


def parse_args(argv):
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("input", metavar="IN", help="PyTorch checkpoint (zip or legacy format) or pickle")
    p.add_argument("output", metavar="OUT.pkl", help="converted pickle to write")
    p.add_argument("--kind", choices=("auto", "full", "pwc"), default="auto",
                   help="full: the 272-key PWC_Recons model; pwc: the 126-key PWC-Net file; "
                        "auto (default): pwc when every key is a PWC-Net key")
    p.add_argument("--allow-partial", action="store_true", help="accept a file with missing keys")
    p.add_argument("--allow-nonfinite", action="store_true",
                   help="accept weights holding NaN or infinity (refused by default: they give black frames)")
    p.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    return p.parse_args(argv)


def convert(args):
    t0 = time.perf_counter()
    src, out = args.input, args.output
    if os.path.isdir(out):
        raise ConvertError(out, "is a directory")
    if os.path.exists(out) and not args.force:
        raise ConvertError(out, "already exists (use --force to overwrite)")
    if os.path.exists(src) and os.path.exists(out) and os.path.samefile(src, out):
        raise ConvertError(out, "is the input file")
    out_dir = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(out_dir):
        raise ConvertError(out, f"output folder {out_dir} does not exist")

    state, kind, info = read_weights(src, args.kind, args.allow_nonfinite)
    report = check_state(state, kind)
    if not report.ok(allow_missing=args.allow_partial):
        model = "the PWC-Net (126 keys)" if kind == "pwc" else "the full Self-Blind-VSR model (272 keys)"
        extra = "" if args.allow_partial or not report.missing or report.unexpected or report.mismatched \
            else "; --allow-partial accepts missing keys"
        raise ConvertError(src, f"does not match {model}: {report.summary()}{extra}")

    # keys in the model's order (the file's order for a partial file is kept the same way)
    order = [k for k in reference_shapes(kind) if k in state]
    state = OrderedDict((k, state[k]) for k in order)
    n_params = int(sum(v.size for v in state.values()))
    dtypes = Counter(str(v.dtype) for v in state.values())
    meta = OrderedDict([
        ("format_version", OUTPUT_FORMAT_VERSION),
        ("kind", kind),
        ("source_file", os.path.basename(src)),
        ("source_sha256", sha256_of(src)),
        ("source_format", info.format),
        ("source_wrapper_key", info.wrapper_key),
        ("source_stripped_prefix", info.stripped_prefix),
        ("pwc_naming", info.meta.get("pwc_naming")),
        ("key_count", len(state)),
        ("expected_key_count", report.expected),
        ("param_count", n_params),
        ("dtypes", dict(dtypes)),
        ("converter", "jittor_sbvsr tools/convert_weights.py"),
    ])
    write_pickle({"state_dict": state, "meta": meta}, out, args.force)
    dt = time.perf_counter() - t0

    size = os.path.getsize(out)
    lines = [
        f"{PROG}: {src} -> {out}",
        f"  source     : {FORMAT_NAMES.get(info.format, info.format)}"
        + (f", wrapped under '{info.wrapper_key}'" if info.wrapper_key else "")
        + (f", '{info.stripped_prefix}' prefix removed" if info.stripped_prefix else ""),
        f"  sha256     : {meta['source_sha256']}",
        f"  kind       : {kind}" + (f" ({meta['pwc_naming']}* naming)" if kind == "pwc" else ""),
        f"  keys       : {len(report.matched)}/{report.expected} matched, {len(report.missing)} missing, "
        f"{len(report.unexpected)} unexpected, {len(report.mismatched)} mis-shaped",
        f"  parameters : {n_params:,}",
        f"  dtypes     : " + ", ".join(f"{d} x{n}" for d, n in sorted(dtypes.items())),
        f"  wrote      : {out} ({size / 1e6:.1f} MB) in {dt:.2f} s",
    ]
    if report.missing:
        lines.append(f"  WARNING    : partial file, {report.summary()}")
    print("\n".join(lines))


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        convert(args)
    except (CheckpointError, ConvertError) as e:
        print(f"{PROG}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: error: {args.output}: interrupted, nothing written", file=sys.stderr)
        return 130
    except OSError as e:
        name = e.filename or args.output
        print(f"{PROG}: error: {name}: {e.strerror or e}", file=sys.stderr)
        return 2
    except Exception as e:  # a bug: still one line, still no output file
        print(f"{PROG}: error: {args.input}: internal error ({type(e).__name__}: {' '.join(str(e).split())})",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
