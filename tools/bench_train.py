"""Seconds per training iteration (forward 'train', losses, backward, Adam step), Jittor vs the PyTorch
reference, same weights, same batches, in this process, warm; medians.

Usage: python tools/bench_train.py [--batch 2] [--patch 64] [--repeats 2] [--small]
(--small: n_feat 16, 1 + 1 ResBlocks, for a quick check; default: the full upstream configuration)
"""
import argparse

import numpy as np
import torch  # before Jittor, see tests/conftest.py

import jittor_sbvsr
from jittor_sbvsr import runtime
from jittor_sbvsr.models import PWC_Recons
from jittor_sbvsr.state_dict import load_state_dict_strict
from jittor_sbvsr.trainer.loop import train_step
from jittor_sbvsr.trainer.optim import GROUPS, make_optimizer
from side_by_side import interleaved_medians  # tools/, this script's folder
from support import reference

ref = reference()

jt = runtime.init()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--patch", type=int, default=64, help="LR patch size")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--small", action="store_true")
    args = parser.parse_args()
    config = dict(n_feat=16, extra_RBS=1, recons_RBS=1) if args.small else {}
    torch.manual_seed(0)
    net_t = ref.PWC_Recons(**config)
    net_j = PWC_Recons(**config)
    load_state_dict_strict(net_j, ref.state_dict_numpy(net_t))
    opt_t = torch.optim.Adam([{"params": list(getattr(net_t, n).parameters()),
                               "lr": 1e-6 if n == "flow_net" else 1e-4} for n in GROUPS])
    opt_j = make_optimizer(net_j)
    rng = np.random.default_rng(0)
    batches = [rng.random((args.batch, 5, 3, args.patch, args.patch)).astype(np.float32)
               for _ in range(args.repeats + 1)]

    def step_torch(x):
        loss, _ = ref.train_loss(net_t({"x": torch.from_numpy(x), "mode": "train"})[0])
        opt_t.zero_grad()
        loss.backward()
        opt_t.step()
        return loss.item()

    def step_jittor(x):
        loss, _ = train_step(net_j, opt_j, jt.array(x))
        jt.sync_all(True)
        return loss

    first = (step_jittor(batches[0]), step_torch(batches[0]))  # warm-up (Jittor compiles here)
    med = interleaved_medians({"jittor": step_jittor, "torch": step_torch}, [(x,) for x in batches[1:]])
    print(jittor_sbvsr.report())
    print(f"{'small' if args.small else 'full'}-config training iteration, batch {args.batch}, LR patch "
          f"{args.patch}, {torch.get_num_threads()} torch threads, median of {args.repeats}:")
    print(f"  jittor {med['jittor']:.2f} s | torch reference {med['torch']:.2f} s | jittor/torch "
          f"{med['jittor'] / med['torch']:.2f}x | first-step loss jittor {first[0]:.6f} torch {first[1]:.6f}")


if __name__ == "__main__":
    main()
