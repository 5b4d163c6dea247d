"""PWC-Net optical flow (upstream-conventions §1), with the 2018 ``module*`` layer names of the checkpoints.

Every grid_sample uses align_corners=True (the PyTorch 0.4.1 behaviour the weights were trained with)
and every bilinear resize align_corners=False (upstream-conventions §2).
"""
import math

import numpy as np

import cuda_ops
from cuda_ops import warp as warp_op
from ..runtime import jittor
from . import channels_last

jt = jittor()
nn = jt.nn


SLOPE = 0.1  # of PWC-Net's leaky ReLUs


def lrelu():
    return nn.LeakyReLU(SLOPE)


def conv3x3(cin, cout, stride=1, dilation=1):
    """A 3x3 convolution keeping the size (or halving it at stride 2) that can run channels-last."""
    return channels_last.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation)


def backward_warp(image, flow):
    """PWC 'Backward': sample ``image`` at (x, y) + flow (pixels), zero where the footprint leaves the image.

    A ones channel is sampled alongside; pixels whose bilinear weight inside the image is <= 0.999 are
    zeroed (binary mask, no gradient through it). CPU inference computes the same in one C++ pass
    (``cuda_ops.warp``).
    """
    if warp_op.wanted():
        return warp_op.masked_warp(image, flow, "zeros")[0]
    b, c, h, w = image.shape
    grid_x = jt.array(np.linspace(-1.0, 1.0, w, dtype=np.float32)).reshape(1, 1, 1, w).broadcast((b, 1, h, w))
    grid_y = jt.array(np.linspace(-1.0, 1.0, h, dtype=np.float32)).reshape(1, 1, h, 1).broadcast((b, 1, h, w))
    x = grid_x + flow[:, 0:1] / ((w - 1.0) / 2.0)
    y = grid_y + flow[:, 1:2] / ((h - 1.0) / 2.0)
    grid = jt.concat([x, y], dim=1).transpose(0, 2, 3, 1)
    sampled = nn.grid_sample(jt.concat([image, jt.ones((b, 1, h, w))], dim=1), grid,
                             mode="bilinear", padding_mode="zeros", align_corners=True)
    mask = (sampled[:, -1:] > 0.999).float32().stop_grad()
    return sampled[:, :-1] * mask


class Extractor(nn.Module):
    """Six stride-2 levels (16, 32, 64, 96, 128, 196 channels); returns the list of all levels. In CPU inference
    the pyramid is computed channels-last with the leaky ReLUs fused (``channels_last.apply``)."""

    CHANNELS = [3, 16, 32, 64, 96, 128, 196]
    NAMES = ["moduleOne", "moduleTwo", "moduleThr", "moduleFou", "moduleFiv", "moduleSix"]

    def __init__(self):
        super().__init__()
        for name, cin, cout in zip(self.NAMES, self.CHANNELS[:-1], self.CHANNELS[1:]):
            setattr(self, name, nn.Sequential(
                conv3x3(cin, cout, stride=2), lrelu(),
                conv3x3(cout, cout), lrelu(),
                conv3x3(cout, cout), lrelu(),
            ))

    def execute(self, image):
        def pyramid(x):
            levels = []
            for name in self.NAMES:
                for conv in list(getattr(self, name))[::2]:  # (convolution, leaky ReLU) pairs, the ReLU fused
                    x = conv(x, relu_slope=SLOPE)
                levels.append(x)
            return tuple(levels)

        return list(channels_last.apply(pyramid, image, direct_only=True))


class Decoder(nn.Module):
    """Flow estimator at pyramid level L (2..6): cost volume + dense block, new features prepended."""

    # input channels of level L's dense block: 81 correlation + first features + upsampled flow/feat
    INPUT_CHANNELS = {2: 81 + 32 + 2 + 2, 3: 81 + 64 + 4, 4: 81 + 96 + 4, 5: 81 + 128 + 4, 6: 81}
    DENSE = [("moduleOne", 128), ("moduleTwo", 128), ("moduleThr", 96), ("moduleFou", 64), ("moduleFiv", 32)]

    def __init__(self, level):
        super().__init__()
        cur = self.INPUT_CHANNELS[level]
        if level < 6:
            prev = self.INPUT_CHANNELS[level + 1] + 448
            self.moduleUpflow = nn.ConvTranspose2d(2, 2, 4, 2, 1)
            self.moduleUpfeat = nn.ConvTranspose2d(prev, 2, 4, 2, 1)
            # converts the network's flow unit (full-resolution pixels / 20) into pixels at this level
            self.backward_scale = 20.0 / 2 ** level
        cin = cur
        for name, cout in self.DENSE:
            setattr(self, name, channels_last.ConvLeakyReLU(conv3x3(cin, cout), SLOPE))
            cin += cout
        self.moduleSix = nn.Sequential(conv3x3(cin, 2))
        self.level = level

    def execute(self, first, second, previous, refiner=None):
        """{"flow", "feat"} of this level from the two images' features and the coarser level's estimate; with
        ``refiner`` (the finest level) only {"flow"}, refined. The dense block (and the refiner) run
        channels-last in CPU inference when oneDNN is reached directly (``channels_last.apply``)."""
        if previous is None:
            feat = nn.leaky_relu(cuda_ops.correlation(first, second), SLOPE)
        else:
            flow = self.moduleUpflow(previous["flow"])
            feat_up = self.moduleUpfeat(previous["feat"])
            warped = backward_warp(second, flow * self.backward_scale)
            volume = nn.leaky_relu(cuda_ops.correlation(first, warped), SLOPE)
            feat = jt.concat([volume, first, flow, feat_up], dim=1)

        def dense(feat):
            axis = channels_last.channel_axis()
            for name, _ in self.DENSE:
                feat = jt.concat([getattr(self, name)(feat), feat], dim=axis)
            flow = self.moduleSix(feat)
            return flow + refiner(feat) if refiner is not None else (flow, feat)

        out = channels_last.apply(dense, feat, direct_only=True)  # else the NCHW layers, as before the operator
        return {"flow": out} if refiner is not None else dict(zip(("flow", "feat"), out))


class Refiner(nn.Module):
    """Context network: dilated convs (1, 2, 4, 8, 16, 1, 1) on the level-2 features."""

    LAYERS = [(565, 128, 1), (128, 128, 2), (128, 128, 4), (128, 96, 8), (96, 64, 16), (64, 32, 1)]

    def __init__(self):
        super().__init__()
        layers = []
        for cin, cout, dilation in self.LAYERS:
            layers += [conv3x3(cin, cout, dilation=dilation), lrelu()]
        layers.append(conv3x3(32, 2))
        self.moduleMain = nn.Sequential(*layers)

    def execute(self, feat):
        return self.moduleMain(feat)


class Network(nn.Module):
    """PWC-Net: two images (sizes multiples of 64) -> flow at 1/4 resolution in units of 20 pixels.

    ``extract`` and ``decode`` are exposed separately so that a frame's feature pyramid can be
    computed once and reused for several flows.
    """

    LEVELS = [("moduleSix", 6), ("moduleFiv", 5), ("moduleFou", 4), ("moduleThr", 3), ("moduleTwo", 2)]

    def __init__(self):
        super().__init__()
        self.moduleExtractor = Extractor()
        self.moduleTwo = Decoder(2)
        self.moduleThr = Decoder(3)
        self.moduleFou = Decoder(4)
        self.moduleFiv = Decoder(5)
        self.moduleSix = Decoder(6)
        self.moduleRefiner = Refiner()

    def extract(self, image):
        return self.moduleExtractor(image)

    def decode(self, first_levels, second_levels):
        estimate = None
        for name, level in self.LEVELS:
            refiner = self.moduleRefiner if level == self.LEVELS[-1][1] else None
            estimate = getattr(self, name)(first_levels[level - 1], second_levels[level - 1], estimate, refiner)
        return estimate["flow"]

    def execute(self, first, second):
        return self.decode(self.extract(first), self.extract(second))

    def start_from_zero_flow(self):
        """Make every flow estimate exactly 0 (identity warps) while keeping every weight trainable.

        Zeroes the layer that predicts each level's flow, the refiner's last layer and the biases of the flow
        upsampling; the upsampling weights stay random so that gradients still reach the coarser levels. For
        training without pretrained PWC-Net weights: a random flow net warps neighbours by meaningless flows,
        while zero flow is right for a still camera and close for small motion.
        """
        layers = [getattr(self, name).moduleSix[0] for name, _ in self.LEVELS] + [self.moduleRefiner.moduleMain[-1]]
        params = [p for layer in layers for p in (layer.weight, layer.bias)]
        params += [getattr(self, name).moduleUpflow.bias for name, level in self.LEVELS if level < 6]
        for p in params:
            p.assign(jt.zeros_like(p))


class Flow_PWC(nn.Module):
    """Flow in original-resolution pixels (channel 0 = x) and backward warping of features."""

    def __init__(self):
        super().__init__()
        self.moduleNetwork = Network()

    @staticmethod
    def padded_size(h, w):
        """The 64-multiple size PWC-Net runs at."""
        return int(math.ceil(h / 64.0) * 64), int(math.ceil(w / 64.0) * 64)

    def pyramid(self, images):
        """Feature pyramid of images [B, 3, H, W] in [0, 1] RGB, resized to the 64-multiple size."""
        h, w = images.shape[2:]
        resized = nn.interpolate(images, size=self.padded_size(h, w), mode="bilinear", align_corners=False)
        return self.moduleNetwork.extract(resized)

    def flow_from_pyramids(self, first_levels, second_levels, h, w):
        """Flow [B, 2, h, w] from first to second, given their pyramids (upstream-conventions §1)."""
        ph, pw = self.padded_size(h, w)
        raw = self.moduleNetwork.decode(first_levels, second_levels)
        flow = 20.0 * nn.interpolate(raw, size=(h, w), mode="bilinear", align_corners=False)
        return jt.concat([flow[:, 0:1] * (float(w) / float(pw)), flow[:, 1:2] * (float(h) / float(ph))], dim=1)

    def estimate_flow(self, first, second):
        h, w = first.shape[2:]
        return self.flow_from_pyramids(self.pyramid(first), self.pyramid(second), h, w)

    def execute(self, first, second):
        return self.estimate_flow(first, second)

    @staticmethod
    def warp(x, flow):
        """Backward-warp x [B, C, H, W] by flow (pixels); returns (warped * mask, mask).

        Features are sampled with 'border' padding; the mask (sampled from ones with 'zeros' padding)
        is 1 where the whole bilinear footprint lies inside the image (>= 0.999), else 0. CPU inference
        computes the same in one C++ pass (``cuda_ops.warp``).
        """
        b, c, h, w = x.shape
        if warp_op.wanted():
            warped, mask = warp_op.masked_warp(x, flow, "border", inclusive=True)
            return warped, mask.broadcast((b, c, h, w))
        grid_x = jt.arange(w).float32().reshape(1, 1, w).broadcast((b, h, w))
        grid_y = jt.arange(h).float32().reshape(1, h, 1).broadcast((b, h, w))
        vx = 2.0 * (grid_x + flow[:, 0]) / max(w - 1, 1) - 1.0
        vy = 2.0 * (grid_y + flow[:, 1]) / max(h - 1, 1) - 1.0
        grid = jt.stack([vx, vy], dim=3)
        out = nn.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)
        ones = jt.ones((b, 1, h, w))
        inside = nn.grid_sample(ones, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
        mask = (inside >= 0.999).float32().stop_grad().broadcast((b, c, h, w))
        return out * mask, mask
