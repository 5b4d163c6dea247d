"""CPU time of one full-size PWC_Recons forward ('infer' mode), Jittor vs the PyTorch reference.

Both run in this process with the same weights on the same 5 frames, interleaved, warm; medians.
Usage: python tools/bench_model.py [--size 64x112] [--repeats 3]
"""
import argparse

import numpy as np
import torch  # before Jittor, see tests/conftest.py

import jittor_sbvsr
from jittor_sbvsr import runtime
from jittor_sbvsr.models import PWC_Recons
from jittor_sbvsr.state_dict import load_state_dict_strict
from side_by_side import interleaved_medians  # tools/, this script's folder
from support import reference

ref = reference()

jt = runtime.init()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="64x112", help="LR size HxW")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    h, w = (int(v) for v in args.size.split("x"))
    torch.manual_seed(0)
    net_t = ref.PWC_Recons().eval()
    net_j = PWC_Recons()
    load_state_dict_strict(net_j, ref.state_dict_numpy(net_t))
    clip = np.random.default_rng(0).random((1, 5, 3, h, w)).astype(np.float32)
    x_t, x_j = torch.from_numpy(clip), jt.array(clip)

    def run_torch():
        with torch.no_grad():
            return net_t({"x": x_t, "mode": "infer"})[0]["recons"].numpy()

    def run_jittor():
        with jt.no_grad():
            out = net_j({"x": x_j, "mode": "infer"})[0]
            jt.sync([out["recons"], out["est_kernel"]])  # both outputs, as PyTorch computes them eagerly
            jt.sync_all(True)
            return out["recons"].numpy()

    diff = float(np.abs(run_jittor() - run_torch()).max())  # warm-up + parity check
    med = interleaved_medians({"jittor": run_jittor, "torch": run_torch}, [()] * args.repeats)
    print(jittor_sbvsr.report())
    print(f"full-config infer forward, LR {h}x{w}, {torch.get_num_threads()} torch threads, "
          f"median of {args.repeats}:")
    print(f"  jittor {med['jittor'] * 1000:.0f} ms | torch reference {med['torch'] * 1000:.0f} ms | "
          f"jittor/torch {med['jittor'] / med['torch']:.2f}x | max |diff| {diff:.2e}")


if __name__ == "__main__":
    main()
