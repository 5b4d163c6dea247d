"""Sliding-window super-resolution of a frame sequence with per-frame work done once.

Every output frame is ``PWC_Recons`` applied to a window of 5 LR frames centred on it (upstream
``gene_seq``, spec §3 step 3). A frame belongs to up to 5 windows, but its reconstruction features and its
PWC-Net feature pyramid depend on that frame alone, so ``WindowEngine`` computes them once when the frame
arrives, keeps them while a window still needs them, and runs only the per-window part (flows to the
neighbours, warping, fusion, reconstruction) for each centre. The result is value-for-value the output of
``net({'x': window, 'mode': 'infer'})['recons']`` (``naive_window``; tested).

Optional tiling (``tile``, ``overlap`` in LR pixels) bounds memory for large frames: each tile is super-
resolved as its own small video and the tiles are stitched, every output pixel taken from the tile whose
centre region holds it. Flow is then estimated per tile, so results near tile seams differ slightly from
the untiled ones; the overlap keeps those differences small.
"""
import numpy as np

from .runtime import jittor

jt = jittor()
N_SEQ = 5


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


def naive_window(net, frames):
    """Reference: the whole network on one window of 5 uint8 frames -> recons float32 [3, 4h, 4w]."""
    x = jt.concat([to_tensor(f) for f in frames], dim=0).unsqueeze(0)
    with jt.no_grad():
        return net({"x": x, "mode": "infer"})[0]["recons"].numpy()[0]


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
    blur kernel estimate (KernelNet on the full frames), ``reset()`` between videos; or ``restore_clip``
    for all full windows of a clip.
    """

    def __init__(self, net, tile=None, overlap=16):
        self.net, self.tile, self.overlap = net, tile, overlap
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
        with jt.no_grad():
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
        with jt.no_grad():
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
        outs = []
        for centre in range(2, n - 2):
            indices = window_indices(centre, n, border=False)
            for j in indices:
                if not self.has(j):
                    self.add(j, frame(j))
            outs.append(self.super_resolve(indices))
            self.release_below(centre - 1)
        self.reset()
        return outs

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
