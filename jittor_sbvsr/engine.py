"""Sliding-window super-resolution of a frame sequence with per-frame work done once.

Every output frame is ``PWC_Recons`` applied to a window of 5 LR frames centred on it (upstream
``gene_seq``). A frame belongs to up to 5 windows, but its reconstruction features and its
PWC-Net feature pyramid depend on that frame alone, so ``WindowEngine`` computes them once when the frame
arrives, keeps them while a window still needs them, and runs only the per-window part (flows to the
neighbours, warping, fusion, reconstruction) for each centre. The result is value-for-value the output of
``net({'x': window, 'mode': 'infer'})['recons']`` (``naive_window``; tested).

Optional tiling (``tile``, ``overlap`` in LR pixels) bounds memory for large frames: each tile is super-
resolved as its own small video and the tiles are stitched, every output pixel taken from the tile whose
centre region holds it. Flow is then estimated per tile, so results near tile seams differ slightly from
the untiled ones; the overlap keeps those differences small.
"""
import time
from dataclasses import dataclass

import numpy as np

from .models import channels_last
from .runtime import jittor
from .video_io import length_problem

jt = jittor()
N_SEQ = 5
_WARMED = set()  # (network id, tiling, frame shape, kernel) already warmed up in this process


def window_indices(centre, n, border):
    """Frame indices of the 5-frame window centred on ``centre`` in a video of ``n`` frames.

    Without ``border`` only centres 2..n-3 exist (upstream default: the first and last two frames are not
    restored). With ``border`` the sequence is extended as upstream, [f0, f1] + frames + [f(n-2), f(n-1)],
    i.e. missing neighbours -2/-1 become frames 0/1 and n/n+1 become n-2/n-1; for a 1-frame clip (which
    upstream cannot process) every index is 0.
    """
    if not border and not 2 <= centre <= n - 3:
        raise ValueError(f"centre {centre} has no full window in {n} frames without border")
    out = []
    for j in range(centre - 2, centre + 3):
        j = j + 2 if j < 0 else j - 2 if j >= n else j
        out.append(min(max(j, 0), n - 1))
    return out


def to_tensor(img):
    """uint8 H x W x 3 RGB -> float32 [1, 3, H, W] in [0, 1] (upstream ``np2Tensor``, rgb_range 1)."""
    x = img.astype(np.float32).transpose(2, 0, 1)[None] * np.float32(1.0 / 255.0)
    return jt.array(np.ascontiguousarray(x))


def to_image(recons):
    """float32 [3, H, W] (or [1, 3, H, W]) -> uint8 H x W x 3: x255, clamp to [0, 255], round (upstream)."""
    img = np.asarray(recons, np.float32).reshape(3, *recons.shape[-2:]).transpose(1, 2, 0)
    return np.round(np.clip(img * np.float32(255.0), 0, 255)).astype(np.uint8)


def window_output(net, frames):
    """The whole network's 'infer' output dict (lazy Jittor Vars: only what is read is computed) for one
    window of 5 uint8 frames."""
    x = jt.concat([to_tensor(f) for f in frames], dim=0).unsqueeze(0)
    with jt.no_grad():
        return net({"x": x, "mode": "infer"})[0]


def naive_window(net, frames):
    """Reference: the whole network on one window of 5 uint8 frames -> recons float32 [3, 4h, 4w]."""
    return window_output(net, frames)["recons"].numpy()[0]


def tile_spans(size, tile, overlap):
    """Tiles along one axis: ``[(start, stop, keep_start, keep_stop)]`` covering 0..size.

    Tiles of length ``tile`` (the last one shifted to end at ``size``) overlapping by at least ``overlap``;
    ``keep_*`` split every overlap at its middle so each position is kept from exactly one tile.
    """
    if tile is None or tile >= size:
        return [(0, size, 0, size)]
    step = tile - overlap
    starts = list(range(0, size - tile, step)) + [size - tile]
    spans = []
    for i, s in enumerate(starts):
        keep_start = 0 if i == 0 else (s + starts[i - 1] + tile) // 2
        keep_stop = size if i == len(starts) - 1 else (starts[i + 1] + s + tile) // 2
        spans.append((s, s + tile, keep_start, keep_stop))
    return spans


class WindowEngine:
    """Super-resolves windows of a video; per-frame features and pyramids are cached by frame index.

    Use: ``add(j, img)`` for each decoded frame (j >= 0, once), ``super_resolve(indices)`` per window,
    ``release_below(j)`` when no later window needs frames before j, ``kernel(indices)`` for the 13x13
    blur kernel estimate (KernelNet on the full frames), ``reset()`` between videos; or ``stream`` (below),
    the loop that drives it over a sequence of frames. ``precision`` "bf16" runs the channels-last convolutions
    (features, PWC-Net, reconstruction) in bfloat16 on the CPU (``channels_last.precision``).
    """

    def __init__(self, net, tile=None, overlap=16, precision="fp32"):
        self.net, self.tile, self.overlap, self.precision = net, tile, overlap, precision
        self.scale = net.scale
        self._cache = {}
        self._tiles = None

    def _layout(self, h, w):
        rows, cols = tile_spans(h, self.tile, self.overlap), tile_spans(w, self.tile, self.overlap)
        return [(r, c) for r in rows for c in cols]

    def add(self, j, img):
        """Compute and keep frame ``j``'s tensor and, per tile, its features and PWC-Net pyramid."""
        x = to_tensor(img)
        if self._tiles is None:
            self._tiles = self._layout(*img.shape[:2])
        entry = {"x": x, "tiles": []}
        with jt.no_grad(), channels_last.precision(self.precision):
            for (r0, r1, _, _), (c0, c1, _, _) in self._tiles:
                xt = x if (r1 - r0, c1 - c0) == tuple(img.shape[:2]) else x[:, :, r0:r1, c0:c1]
                feats = self.net.features(xt)
                pyramid = self.net.flow_net.pyramid(xt)
                jt.sync([xt, feats] + list(pyramid))
                entry["tiles"].append((xt, feats, pyramid))
        self._cache[j] = entry

    def has(self, j):
        return j in self._cache

    def release_below(self, j):
        """Forget every cached frame with index < j."""
        for k in [k for k in self._cache if k < j]:
            del self._cache[k]

    def reset(self):
        """Forget all frames and the tile layout (next video)."""
        self._cache.clear()
        self._tiles = None
        jt.gc()

    def super_resolve(self, indices):
        """SR of the centre of the window ``indices`` (5 cached frames) -> float32 [3, 4h, 4w] numpy."""
        entries = [self._cache[j] for j in indices]
        s = self.scale
        h, w = entries[0]["x"].shape[2:]
        out = np.empty((3, h * s, w * s), np.float32)
        with jt.no_grad(), channels_last.precision(self.precision):
            for t, ((r0, _, k0, k1), (c0, _, l0, l1)) in enumerate(self._tiles):
                frames, feats, pyramids = zip(*(e["tiles"][t] for e in entries))
                recons = self.net.reconstruct(list(frames), list(feats), list(pyramids)).numpy()[0]
                out[:, k0 * s:k1 * s, l0 * s:l1 * s] = recons[:, (k0 - r0) * s:(k1 - r0) * s,
                                                               (l0 - c0) * s:(l1 - c0) * s]
        return out

    def restore_clip(self, n, frame):
        """SR of every full window of an n-frame clip (centres 2..n-3, no border) -> list of float32
        [3, 4h, 4w]. ``frame(j)`` gives uint8 frame j and is asked once per frame; frames are released as
        soon as no later window needs them."""
        return [w.recons for w in stream(self, (frame(j) for j in range(n)))]

    def ensure_warm(self, img, kernel=False):
        """``warm_up`` once per network and frame size in this process (Jittor's compiled operators are
        shared by all engines), and once more when the kernel is first wanted."""
        key = (id(self.net), self.tile, self.overlap, self.precision, img.shape, kernel)
        if key not in _WARMED:
            self.warm_up(img, kernel)
            _WARMED.add(key)

    def warm_up(self, img, kernel=False):
        """Run one window of 5 copies of ``img`` and discard it: Jittor compiles (or loads) its fused
        operators for a frame size and graph on first use, which must not count in the timings. The copies
        are separate frames: a window of one frame repeated builds a different graph and warms up less."""
        keys = list(range(-N_SEQ, 0))
        for k in keys:
            self.add(k, img)
        self.super_resolve(keys)
        if kernel:
            self.kernel(keys)
        for k in keys:
            del self._cache[k]

    def kernel(self, indices):
        """KernelNet's 13x13 kernel estimate for the window ``indices`` (full frames), float32 numpy."""
        with jt.no_grad():
            x = jt.concat([self._cache[j]["x"] for j in indices], dim=1)
            return self.net.kernel_net(x).numpy()[0, 0]


class ClipTooShort(ValueError):
    """A clip has too few frames for the windows asked for; ``n`` is its length."""

    def __init__(self, n, problem):
        self.n = n
        super().__init__(problem)


@dataclass
class Window:
    """One output frame of ``stream``: centre index, its window, SR float32 [3, 4h, 4w] (None when skipped),
    kernel estimate (when asked), seconds spent decoding input for it and computing it."""
    centre: int
    indices: list
    recons: np.ndarray = None
    kernel: np.ndarray = None
    decode_s: float = 0.0
    forward_s: float = 0.0


def stream(engine, frames, border=False, kernel=False, wanted=None, start=0, stop=None):
    """The window loop: super-resolve a sequence of uint8 frames as they arrive, yielding a ``Window`` per
    output frame in order. Frames are pulled from the iterable ``frames`` only 2 ahead of the centre and
    dropped (from the engine too) once no later window needs them, so memory does not grow with the clip.

    Without ``border`` centres 2..n-3 are restored, with it all (``window_indices``). ``wanted(centre)``
    False skips the computation (the Window has no ``recons``; resumed runs). ``start``/``stop`` restrict
    the centres to ``start <= centre < stop`` (one process's share of a clip): frames before ``start - 2``
    are read and dropped at once, and the loop ends at ``stop`` without reading further. Raises ClipTooShort
    (before any output when the clip is short).
    """
    frames = iter(frames)
    buf, n, pulled = {}, None, 0
    centre = max(start, 0 if border else 2)
    try:
        while stop is None or centre < stop:
            t0 = time.perf_counter()
            while n is None and pulled <= centre + 2:
                img = next(frames, None)
                if img is None:
                    n = pulled
                else:
                    if pulled >= centre - 2:  # the earliest frame a window from here on uses
                        buf[pulled] = img
                    pulled += 1
            if n is not None:
                problem = length_problem(n, border)
                if problem:
                    raise ClipTooShort(n, problem)
                if centre >= (n if border else n - 2):
                    return
            window = Window(centre, window_indices(centre, n or centre + 3, border),
                            decode_s=time.perf_counter() - t0)
            if wanted is None or wanted(centre):
                engine.ensure_warm(buf[centre], kernel)
                t1 = time.perf_counter()
                for j in dict.fromkeys(window.indices):
                    if not engine.has(j):
                        engine.add(j, buf[j])
                window.recons = engine.super_resolve(window.indices)
                window.kernel = engine.kernel(window.indices) if kernel else None
                window.forward_s = time.perf_counter() - t1
            yield window
            engine.release_below(centre - 1)
            for j in [j for j in buf if j < centre - 1]:
                del buf[j]
            centre += 1
    finally:
        engine.reset()
