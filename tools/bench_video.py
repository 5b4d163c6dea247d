"""Memory and speed of video-in/video-out inference against clip length, with and without overlapped I/O.

    python tools/bench_video.py [--frames 50 500] [--size 64x48] [--model WEIGHTS]

Each measurement is a fresh process that runs ``infer`` on a generated video file (ffmpeg test pattern with a
tone) with ``--save-video --border`` and PNG output, and reports its peak RSS (ru_maxrss) and wall-clock
frames/s (after a 5-frame warm-up run in the same process, so compilation is not timed). Peak RSS should not depend on the clip length (frames are decoded as a stream and dropped when no
window needs them; outputs leave through a bounded queue); the last row repeats the longest clip with
``--no-overlap`` (PNG writing and encoding in the compute thread). Without ``--model`` a small seeded
network (n_feat 16, 1+1 ResBlocks) is used, which makes I/O a larger share than with the released one.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

from support import child_env  # tools/, this script's folder

TAG = "bench_video: "


def make_clip(path, n, w, h):
    from jittor_sbvsr import ffmpeg

    subprocess.run([ffmpeg.exe(), "-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                    f"testsrc=size={w}x{h}:rate=25", "-f", "lavfi", "-i", "sine=frequency=440", "-frames:v", str(n),
                    "-t", str(n / 25), "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", path], check=True)


def child(args):
    """One measured run; prints a JSON line with peak RSS (MiB), seconds and frames."""
    from jittor_sbvsr import infer

    work = tempfile.mkdtemp(prefix="bench_video_")
    warm, clip = os.path.join(work, "warm.mp4"), os.path.join(work, "clip.mp4")
    make_clip(warm, 5, *args.size)
    make_clip(clip, args.n, *args.size)
    model = None
    if not args.model:
        from jittor_sbvsr import runtime
        from jittor_sbvsr.config import ModelConfig

        runtime.jittor().set_global_seed(0)
        model = ModelConfig(n_feat=16, extra_rbs=1, recons_rbs=1).build()
    argv = ["--output", work, "--border", "--save-video", "--quiet"]
    argv += (["--model", args.model] if args.model else []) + (["--no-overlap"] if args.no_overlap else [])
    code = infer.main([warm, "--run-name", "warm"] + argv, model=model)  # Jittor compiles here, not timed
    start = time.perf_counter()
    code = code or infer.main([clip, "--run-name", "r"] + argv, model=model)
    seconds = time.perf_counter() - start
    if code != 0:
        sys.exit(code)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(TAG + json.dumps({"rss_mib": rss, "seconds": seconds, "frames": args.n}), flush=True)


def measure(n, size, model, no_overlap):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--n", str(n), "--size", f"{size[0]}x{size[1]}"]
    cmd += (["--model", model] if model else []) + (["--no-overlap"] if no_overlap else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, env=child_env())
    lines = [line for line in proc.stdout.splitlines() if line.startswith(TAG)]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"bench_video: error: the run of {n} frames failed: {proc.stderr.strip()[-500:]}")
    return json.loads(lines[-1][len(TAG):])


def size_type(text):
    w, h = (int(v) for v in text.lower().split("x"))
    return w, h


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, nargs=2, default=[50, 500], metavar=("SHORT", "LONG"))
    p.add_argument("--size", type=size_type, default=(64, 48), help="LR width x height (default 64x48)")
    p.add_argument("--model", help="weights file (default: a small seeded network)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, help=argparse.SUPPRESS)
    p.add_argument("--no-overlap", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args)
    short, long = args.frames
    rows = [(short, False), (long, False), (long, True)]
    results = [measure(n, args.size, args.model, no_overlap) for n, no_overlap in rows]
    print(f"LR {args.size[0]}x{args.size[1]}, {'weights ' + args.model if args.model else 'small seeded network'}")
    print(f"{'frames':>7} {'I/O':>12} {'peak RSS MiB':>13} {'frames/s':>9}")
    for (n, no_overlap), r in zip(rows, results):
        print(f"{n:>7} {'in-thread' if no_overlap else 'overlapped':>12} {r['rss_mib']:>13.1f} "
              f"{r['frames'] / r['seconds']:>9.2f}")
    growth = results[1]["rss_mib"] / results[0]["rss_mib"] - 1
    speedup = results[1]["seconds"] and results[2]["seconds"] / results[1]["seconds"]
    print(f"peak RSS {long} vs {short} frames: {growth:+.1%}; overlapped I/O is {speedup:.2f}x as fast as in-thread")
    return {"rows": rows, "results": results, "growth": growth, "speedup": speedup}


if __name__ == "__main__":
    main()
