"""PWC_Recons: the Self-Blind-VSR network (upstream-conventions §1).

Five LR frames -> x4 super-resolved centre frame (flow-aligned feature fusion + 20 ResBlocks) and a
13x13 blur kernel (KernelNet). ``forward`` modes train / val / infer follow upstream-conventions §1.
"""
import math

from ..runtime import jittor
from . import channels_last
from .kernel_net import KernelNet
from .pwc_net import Flow_PWC

jt = jittor()
nn = jt.nn


def conv(cin, cout, kernel_size=3):
    return channels_last.Conv2d(cin, cout, kernel_size, padding=kernel_size // 2)


class ResBlock(nn.Module):
    """conv -> ReLU -> conv, plus the input (no activation after the sum)."""

    def __init__(self, planes, kernel_size=3):
        super().__init__()
        self.conv1 = conv(planes, planes, kernel_size)
        self.conv2 = conv(planes, planes, kernel_size)

    def execute(self, x):
        return self.conv2(self.conv1(x, relu_slope=0.0)) + x


def blur_down(x, kernel, scale):
    """Blur every channel of x [B, C, H, W] with its sample's kernel [B, 1, k, k], keep [::scale, ::scale].

    Replicate padding by k//2, cross-correlation, decimation starting at pixel 0 (upstream-conventions §1), as one
    grouped convolution with stride ``scale`` (groups = B*C), so any batch size works.
    """
    b, c, h, w = x.shape
    k = kernel.shape[-1]
    assert kernel.shape[1] == 1, f"blur_down: kernel must have 1 channel, got {kernel.shape}"
    padded = nn.pad(x, (k // 2,) * 4, mode="replicate").reshape(1, b * c, h + k - 1, w + k - 1)
    weights = kernel.reshape(b, 1, 1, k, k).broadcast((b, c, 1, k, k)).reshape(b * c, 1, k, k)
    out = nn.conv2d(padded, weights, stride=scale, groups=b * c)
    return out.reshape(b, c, out.shape[2], out.shape[3])


class PWC_Recons(nn.Module):
    """The full network; defaults are the configuration of the released checkpoints."""

    def __init__(self, n_colors=3, n_sequence=5, extra_RBS=3, recons_RBS=20, n_feat=128, scale=4, ksize=13):
        super().__init__()
        self.n_sequence = n_sequence
        self.scale = scale
        self.in_conv = nn.Sequential(conv(n_colors, n_feat))
        self.extra_feat = nn.Sequential(*[ResBlock(n_feat) for _ in range(extra_RBS)])
        self.fusion_conv = nn.Sequential(conv(n_feat * n_sequence, n_feat))
        self.recons_net = nn.Sequential(*[ResBlock(n_feat) for _ in range(recons_RBS)])
        self.out_conv = nn.Sequential(conv(n_feat, n_feat), conv(n_feat, n_colors))
        upsample = []
        for _ in range(int(math.log2(scale))):
            upsample += [conv(n_feat, 4 * n_feat), channels_last.PixelShuffle(2)]
        self.upsample_layers = nn.Sequential(*upsample)
        self.flow_net = Flow_PWC()
        self.kernel_net = KernelNet(in_c=n_colors * n_sequence, ksize=ksize)

    def features(self, frames):
        """Per-frame features extra_feat(in_conv(frame)) of frames [N, 3, h, w] (batched)."""
        return channels_last.apply(lambda x: self.extra_feat(self.in_conv(x)), frames)

    def head(self, aligned):
        """fusion_conv -> recons_net -> upsample_layers -> out_conv on the concatenated aligned features."""
        return channels_last.apply(
            lambda x: self.out_conv(self.upsample_layers(self.recons_net(self.fusion_conv(x)))), aligned)

    def reconstruct(self, frames, feats, pyramids):
        """SR of the centre frame from 5 frames, their features and their PWC pyramids (lists of 5).

        The flows from the centre to the 4 neighbours are decoded in one batch.
        """
        c = self.n_sequence // 2
        b, _, h, w = frames[c].shape
        others = [i for i in range(self.n_sequence) if i != c]
        first = [jt.concat([pyramids[c][lv]] * len(others), dim=0) for lv in range(len(pyramids[c]))]
        second = [jt.concat([pyramids[i][lv] for i in others], dim=0) for lv in range(len(pyramids[c]))]
        flows = self.flow_net.flow_from_pyramids(first, second, h, w)
        neighbours = jt.concat([feats[i] for i in others], dim=0)
        warped = self.flow_net.warp(neighbours, flows)[0]
        aligned = [warped[j * b:(j + 1) * b] for j in range(len(others))]
        aligned.insert(c, feats[c])
        out = self.head(jt.concat(aligned, dim=1))
        base = nn.interpolate(frames[c], size=(h * self.scale, w * self.scale), mode="bilinear",
                              align_corners=False)
        return out + base

    def recons_forward(self, frame_list):
        """SR of the centre frame of ``frame_list`` (5 tensors [B, 3, h, w]); upstream-conventions §1."""
        b = frame_list[0].shape[0]
        stacked = jt.concat(frame_list, dim=0)
        feats = self.features(stacked)
        levels = self.flow_net.pyramid(stacked)
        n = len(frame_list)
        split = lambda t: [t[i * b:(i + 1) * b] for i in range(n)]  # noqa: E731
        pyramids = list(zip(*[split(level) for level in levels]))
        return self.reconstruct(frame_list, split(feats), pyramids)

    def execute(self, input_dict):
        """{"x": frames [B, 5, 3, h, w], "mode": "train" | "val" | "infer"} -> (outputs, None). An optional
        "kernel" [1, 1, k, k] (a known blur, e.g. when adapting to a clip whose blur is known) replaces
        KernelNet's estimate in the blur-down and is returned as "est_kernel"."""
        x, mode = input_dict["x"], input_dict["mode"]
        frames = [x[:, i] for i in range(self.n_sequence)]
        c = self.n_sequence // 2
        if mode not in ("train", "val", "infer"):
            raise ValueError(f"PWC_Recons: unknown mode {mode!r} (expected train, val or infer)")
        known = input_dict.get("kernel")
        est_kernel = (self.kernel_net(jt.concat(frames, dim=1)) if known is None else
                      known.broadcast((x.shape[0],) + tuple(known.shape[1:])))
        if mode == "infer":
            return {"recons": self.recons_forward(frames), "est_kernel": est_kernel}, None
        down = [blur_down(f, est_kernel, self.scale) for f in frames]
        if mode == "train":
            recons_down = self.recons_forward(down)
            with jt.no_grad():
                recons = self.recons_forward(frames)
            input_cycle = blur_down(recons.detach(), est_kernel, self.scale)
            return {"input": frames[c], "recons_down": recons_down, "input_cycle": input_cycle,
                    "est_kernel": est_kernel}, None
        recons = self.recons_forward(frames)
        input_cycle = blur_down(recons, est_kernel, self.scale)
        return {"input": frames[c], "input_down": down[c], "input_cycle": input_cycle, "recons": recons,
                "recons_down": self.recons_forward(down), "est_kernel": est_kernel}, None
