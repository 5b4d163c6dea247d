"""Plot a training run: loss and held-out PSNR (with bicubic's) against iterations, in one PNG.

    python tools/plot_training.py experiment/Demo_CPU docs/demo_cpu_training.png [--evals evals.json]

Reads the run's metrics.csv and config.json (iterations per epoch come from the training set size, the batch
size and the epoch count). ``--evals`` adds points from ``tools/eval_weights.py --json`` files of per-epoch
checkpoints (a JSON list of {"epoch": E, "file": PATH}): the demo clip's PSNR and, in a third panel, its kernel
estimate's error beside a delta kernel's. Needs matplotlib.
"""
import argparse
import csv
import json
import math
import os
import sys


def read_rows(run_dir):
    with open(os.path.join(run_dir, "metrics.csv"), encoding="utf-8") as f:
        return [{k: (float(v) if v not in ("", "True", "False") else v) for k, v in row.items()}
                for row in csv.DictReader(f)]


def iterations_per_epoch(run_dir):
    """Batches per epoch, from the 'training windows: N x repeat R | batch B' line of the run's log."""
    with open(os.path.join(run_dir, "log.txt"), encoding="utf-8") as f:
        for line in f:
            if "training windows:" in line:
                part = line.split("training windows:")[1]
                windows, repeat = int(part.split("x repeat")[0]), int(part.split("x repeat")[1].split("|")[0])
                batch = int(part.split("| batch")[1].split("x")[0])
                return math.ceil(windows * repeat / batch)
    raise ValueError(f"{run_dir}/log.txt: no 'training windows:' line")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run_dir")
    p.add_argument("out")
    p.add_argument("--evals", help="JSON list of {epoch, file} eval_weights outputs to add (demo clip PSNR)")
    args = p.parse_args(argv)
    try:
        import matplotlib
    except ImportError:
        sys.exit("plot_training: error: matplotlib is not installed (pip install matplotlib)")
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    rows = read_rows(args.run_dir)
    per_epoch = iterations_per_epoch(args.run_dir)
    its = [row["epoch"] * per_epoch for row in rows]
    fig, axes = plt.subplots(1, 3 if args.evals else 2, figsize=(16 if args.evals else 11, 4))
    ax_loss, ax_psnr = axes[0], axes[1]
    for key in ("loss", "L1", "cycle"):
        ax_loss.plot(its, [row[key] for row in rows], label=key)
    ax_loss.set_yscale("log")
    ax_loss.set_title("training loss (epoch means)")
    ax_psnr.plot(its, [row["psnr"] for row in rows], "o-", ms=3, label="held-out clips: SR")
    ax_psnr.plot(its, [row["bicubic_psnr"] for row in rows], "--", label="held-out clips: bicubic")
    if args.evals:
        with open(args.evals, encoding="utf-8") as f:
            points = json.load(f)
        evals = []
        for point in points:
            with open(point["file"], encoding="utf-8") as f:
                evals.append((point["epoch"] * per_epoch, json.load(f)["results"]["demo/astronaut"]))
        ax_psnr.plot([e[0] for e in evals], [e[1]["psnr"] for e in evals], "s-", ms=4, label="demo clip: SR")
        ax_psnr.plot([e[0] for e in evals], [e[1]["bicubic_psnr"] for e in evals], ":", label="demo clip: bicubic")
        ax_kernel = axes[2]
        ax_kernel.plot([e[0] for e in evals], [e[1]["kernel_l1"] for e in evals], "s-", ms=4,
                       label="KernelNet estimate")
        ax_kernel.plot([e[0] for e in evals], [e[1]["delta_kernel_l1"] for e in evals], ":", label="delta kernel")
        ax_kernel.set_title("demo clip: kernel error (sum |k - k_true|)")
    ax_psnr.set_title("PSNR (dB)")
    for ax in axes:
        ax.set_xlabel("iterations")
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=90)
    print(f"{args.out}: {len(rows)} epochs, {per_epoch} iterations each")


if __name__ == "__main__":
    main()
