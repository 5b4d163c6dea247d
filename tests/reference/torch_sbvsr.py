"""PyTorch reference implementation of Self-Blind-VSR, written from the behavioural spec.

Section numbers (§) refer to ``UPSTREAM_SPEC.md``. This module is used by the parity tests as the ground truth
for the Jittor port; it runs on CPU, has no CUDA or cupy dependency and never imports Jittor. Parameter names,
Sequential indices and registration order reproduce the upstream state dict (``state_dict_keys.tsv``).
"""
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

MAX_DISPLACEMENT = 4
LOSS_WEIGHTS = {"L1": 1.0, "cycle": 1.0, "boundaries": 0.5, "sparse": 0.04, "center": 1.0}


def _lrelu():
    return nn.LeakyReLU(negative_slope=0.1, inplace=False)


# ----------------------------------------------------------------------------------------------------------
# Functional building blocks
# ----------------------------------------------------------------------------------------------------------

def correlation(first, second):
    """PWC cost volume, §1.9: [B,C,H,W] x2 -> [B,81,H,W].

    corr[b, (dy+4)*9 + (dx+4), y, x] = mean_c first[b,c,y,x] * second_padded[b,c,y+dy,x+dx], with ``second``
    zero-padded by 4 on every side.
    """
    d = MAX_DISPLACEMENT
    height, width = first.shape[2:]
    padded = F.pad(second, (d, d, d, d))
    volumes = []
    for dy in range(-d, d + 1):
        for dx in range(-d, d + 1):
            shifted = padded[:, :, d + dy:d + dy + height, d + dx:d + dx + width]
            volumes.append((first * shifted).mean(dim=1))
    return torch.stack(volumes, dim=1)


def backward_warp(input, flow):
    """PWC-Net ``Backward``, §1.8: warp ``input`` by ``flow`` (pixels at this level), zero outside.

    Sampling uses align_corners=True and zero padding on the input with a ones channel appended; the ones
    channel becomes a binary mask (> 0.999 -> 1, then < 1 -> 0) that multiplies the warped input.
    """
    batch, _, height, width = input.shape
    xs = torch.linspace(-1.0, 1.0, width, dtype=input.dtype, device=input.device)
    ys = torch.linspace(-1.0, 1.0, height, dtype=input.dtype, device=input.device)
    grid_x = xs.view(1, 1, 1, width).expand(batch, 1, height, width)
    grid_y = ys.view(1, 1, height, 1).expand(batch, 1, height, width)
    grid = torch.cat([grid_x, grid_y], dim=1)
    norm_flow = torch.cat([flow[:, 0:1] / ((width - 1.0) / 2.0), flow[:, 1:2] / ((height - 1.0) / 2.0)], dim=1)
    with_ones = torch.cat([input, torch.ones_like(input[:, :1])], dim=1)
    out = F.grid_sample(with_ones, (grid + norm_flow).permute(0, 2, 3, 1), mode="bilinear",
                        padding_mode="zeros", align_corners=True)
    mask = out[:, -1:].detach()
    mask = torch.where(mask > 0.999, torch.ones_like(mask), mask)
    mask = torch.where(mask < 1.0, torch.zeros_like(mask), mask)
    return out[:, :-1] * mask


def blur_down(x, kernel, scale):
    """Per-sample blur then decimation, §1.5: x [B,C,H,W], kernel [B,1,k,k] -> [B,C,ceil(H/s),ceil(W/s)].

    Replicate-pad by k//2, valid cross-correlation of every channel with its sample's kernel (one grouped
    convolution, groups = B*C), then keep rows/columns 0, s, 2s, ...
    """
    if kernel.shape[1] != 1:
        raise ValueError("blur kernel must have one channel, got %d" % kernel.shape[1])
    batch, channels, height, width = x.shape
    pad = kernel.shape[-1] // 2
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    weight = kernel.repeat_interleave(channels, dim=0)
    blurred = F.conv2d(padded.reshape(1, batch * channels, height + 2 * pad, width + 2 * pad), weight,
                       groups=batch * channels)
    return blurred.reshape(batch, channels, height, width)[:, :, ::scale, ::scale]


# ----------------------------------------------------------------------------------------------------------
# Reconstruction branch blocks (§1.2) and KernelNet (§1.6)
# ----------------------------------------------------------------------------------------------------------

class ResBlock(nn.Module):
    """conv-relu-conv plus identity, §1.2 (the res_translate branch never exists in this model)."""

    def __init__(self, inplanes, planes, kernel_size=3, stride=1, dilation=1):
        super().__init__()
        if inplanes != planes or stride != 1:
            raise ValueError("ResBlock without res_translate needs inplanes == planes and stride 1")
        pad = ((kernel_size + (kernel_size - 1) * (dilation - 1)) - 1) // 2
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size, stride, pad, dilation)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, kernel_size, 1, pad, dilation)

    def forward(self, x):
        return self.conv2(self.relu(self.conv1(x))) + x


class CALayer(nn.Module):
    """Channel attention, §1.6: x * sigmoid(conv(relu(conv(global average of x))))."""

    def __init__(self, channel=64, reduction=16):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_du = nn.Sequential(
            nn.Conv2d(channel, channel // reduction, 1, padding=0), nn.ReLU(),
            nn.Conv2d(channel // reduction, channel, 1, padding=0), nn.Sigmoid())

    def forward(self, x):
        return x * self.conv_du(self.avg_pool(x))


class RCAB(nn.Module):
    """Residual channel-attention block, §1.6: body = [conv, relu, conv, CALayer]; out = body(x) + x."""

    def __init__(self, n_feat=64, kernel_size=3, reduction=16):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(n_feat, n_feat, kernel_size, padding=kernel_size // 2), nn.ReLU(),
            nn.Conv2d(n_feat, n_feat, kernel_size, padding=kernel_size // 2), CALayer(n_feat, reduction))

    def forward(self, x):
        return self.body(x) + x


class KernelNet(nn.Module):
    """Blur-kernel estimator, §1.6: [B,in_c,H,W] -> softmax-normalised kernel [B,1,ksize,ksize]."""

    def __init__(self, in_c=15, ksize=13):
        super().__init__()
        self.ksize = ksize
        self.in_conv = nn.Conv2d(in_c, 64, 3, 1, 1)
        self.body1 = nn.Sequential(RCAB(64), RCAB(64))
        self.global_pool = nn.AdaptiveAvgPool2d(ksize)
        self.body2 = nn.Sequential(RCAB(64), RCAB(64), nn.Conv2d(64, 32, 3, 1, 1), nn.Conv2d(32, 1, 3, 1, 1))
        self.fc_net = nn.Sequential(nn.Linear(ksize * ksize, 1000), nn.Linear(1000, ksize * ksize),
                                    nn.Softmax(dim=1))

    def forward(self, x):
        y = self.body2(self.global_pool(self.body1(self.in_conv(x))))
        y = self.fc_net(y.reshape(y.shape[0], self.ksize * self.ksize))
        return y.reshape(y.shape[0], 1, self.ksize, self.ksize)


# ----------------------------------------------------------------------------------------------------------
# PWC-Net (§1.8) and its wrapper Flow_PWC (§1.7)
# ----------------------------------------------------------------------------------------------------------

class Extractor(nn.Module):
    """Six-level feature pyramid, §1.8: each level = 3 convs (first with stride 2), lrelu after each."""

    CHANNELS = [3, 16, 32, 64, 96, 128, 196]
    NAMES = ["moduleOne", "moduleTwo", "moduleThr", "moduleFou", "moduleFiv", "moduleSix"]

    def __init__(self):
        super().__init__()
        for name, cin, cout in zip(self.NAMES, self.CHANNELS[:-1], self.CHANNELS[1:]):
            setattr(self, name, nn.Sequential(
                nn.Conv2d(cin, cout, 3, 2, 1), _lrelu(),
                nn.Conv2d(cout, cout, 3, 1, 1), _lrelu(),
                nn.Conv2d(cout, cout, 3, 1, 1), _lrelu()))

    def forward(self, x):
        features = []
        for name in self.NAMES:
            x = getattr(self, name)(x)
            features.append(x)
        return features


class Decoder(nn.Module):
    """PWC-Net flow decoder at pyramid level ``level`` (2..6), §1.8."""

    CHANNELS = [None, None, 81 + 32 + 2 + 2, 81 + 64 + 2 + 2, 81 + 96 + 2 + 2, 81 + 128 + 2 + 2, 81, None]
    DENSE = [("moduleOne", 128), ("moduleTwo", 128), ("moduleThr", 96), ("moduleFou", 64), ("moduleFiv", 32)]

    def __init__(self, level):
        super().__init__()
        cur = self.CHANNELS[level]
        prev = self.CHANNELS[level + 1]
        self.level = level
        if level < 6:
            self.backward_scale = 20.0 / 2 ** level
            self.moduleUpflow = nn.ConvTranspose2d(2, 2, 4, 2, 1)
            self.moduleUpfeat = nn.ConvTranspose2d(prev + 448, 2, 4, 2, 1)
        cin = cur
        for name, cout in self.DENSE:
            setattr(self, name, nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1), _lrelu()))
            cin += cout
        self.moduleSix = nn.Sequential(nn.Conv2d(cin, 2, 3, 1, 1))

    def forward(self, first, second, previous):
        if previous is None:
            feat = F.leaky_relu(correlation(first, second), 0.1)
        else:
            flow_up = self.moduleUpflow(previous["flow"])
            feat_up = self.moduleUpfeat(previous["feat"])
            warped = backward_warp(second, flow_up * self.backward_scale)
            volume = F.leaky_relu(correlation(first, warped), 0.1)
            feat = torch.cat([volume, first, flow_up, feat_up], dim=1)
        for name, _ in self.DENSE:
            feat = torch.cat([getattr(self, name)(feat), feat], dim=1)
        return {"flow": self.moduleSix(feat), "feat": feat}


class Refiner(nn.Module):
    """Dilated context network on the level-2 decoder features, §1.8."""

    LAYERS = [(565, 128, 1), (128, 128, 2), (128, 128, 4), (128, 96, 8), (96, 64, 16), (64, 32, 1)]

    def __init__(self):
        super().__init__()
        layers = []
        for cin, cout, dilation in self.LAYERS:
            layers += [nn.Conv2d(cin, cout, 3, 1, dilation, dilation), _lrelu()]
        layers.append(nn.Conv2d(32, 2, 3, 1, 1))
        self.moduleMain = nn.Sequential(*layers)

    def forward(self, x):
        return self.moduleMain(x)


class Network(nn.Module):
    """PWC-Net, §1.8: two images (H, W multiples of 64) -> flow / 20 at quarter resolution [B,2,H/4,W/4]."""

    def __init__(self):
        super().__init__()
        self.moduleExtractor = Extractor()
        self.moduleTwo = Decoder(2)
        self.moduleThr = Decoder(3)
        self.moduleFou = Decoder(4)
        self.moduleFiv = Decoder(5)
        self.moduleSix = Decoder(6)
        self.moduleRefiner = Refiner()

    def forward(self, first, second):
        f = self.moduleExtractor(first)
        s = self.moduleExtractor(second)
        est = self.moduleSix(f[-1], s[-1], None)
        est = self.moduleFiv(f[-2], s[-2], est)
        est = self.moduleFou(f[-3], s[-3], est)
        est = self.moduleThr(f[-4], s[-4], est)
        est = self.moduleTwo(f[-5], s[-5], est)
        return est["flow"] + self.moduleRefiner(est["feat"])


class Flow_PWC(nn.Module):
    """Optical flow wrapper around PWC-Net, §1.7 (no pretrained file is loaded here; use load_numpy_state)."""

    def __init__(self):
        super().__init__()
        self.moduleNetwork = Network()

    def estimate_flow(self, first, second):
        """Flow from ``first`` to ``second`` ([B,3,H,W] RGB) in pixels of H x W, channel 0 horizontal, §1.7."""
        height, width = first.shape[2:]
        height64 = int(math.ceil(height / 64.0) * 64)
        width64 = int(math.ceil(width / 64.0) * 64)
        first64 = F.interpolate(first, size=(height64, width64), mode="bilinear", align_corners=False)
        second64 = F.interpolate(second, size=(height64, width64), mode="bilinear", align_corners=False)
        raw = self.moduleNetwork(first64, second64)
        flow = 20.0 * F.interpolate(raw, size=(height, width), mode="bilinear", align_corners=False)
        ratio = torch.tensor([width / width64, height / height64], dtype=flow.dtype, device=flow.device)
        return flow * ratio.view(1, 2, 1, 1)

    def warp(self, x, flo):
        """Backward-warp ``x`` by pixel flow ``flo``, §1.7: returns (out * mask, mask).

        Features are sampled with 'border' padding, the mask from ones with 'zeros' padding, both with
        align_corners=True; mask entries < 0.999 become 0, then entries > 0 become 1.
        """
        batch, _, height, width = x.shape
        xs = torch.arange(width, dtype=x.dtype, device=x.device).view(1, 1, width).expand(batch, height, width)
        ys = torch.arange(height, dtype=x.dtype, device=x.device).view(1, height, 1).expand(batch, height, width)
        vx = 2.0 * (xs + flo[:, 0]) / max(width - 1, 1) - 1.0
        vy = 2.0 * (ys + flo[:, 1]) / max(height - 1, 1) - 1.0
        grid = torch.stack([vx, vy], dim=3)
        out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)
        mask = F.grid_sample(torch.ones_like(x), grid, mode="bilinear", padding_mode="zeros",
                             align_corners=True).detach()
        mask = torch.where(mask < 0.999, torch.zeros_like(mask), mask)
        mask = torch.where(mask > 0, torch.ones_like(mask), mask)
        return out * mask, mask

    def forward(self, frame_1, frame_2):
        return self.estimate_flow(frame_1, frame_2)


# ----------------------------------------------------------------------------------------------------------
# Top level (§1.1, §1.3, §1.4)
# ----------------------------------------------------------------------------------------------------------

class PWC_Recons(nn.Module):
    """Self-Blind-VSR network, §1.1. Defaults are the configuration used upstream (272 tensors, 18.9 M)."""

    def __init__(self, n_colors=3, n_sequence=5, extra_RBS=3, recons_RBS=20, n_feat=128, scale=4, ksize=13):
        super().__init__()
        self.n_sequence = n_sequence
        self.scale = scale
        self.in_conv = nn.Sequential(nn.Conv2d(n_colors, n_feat, 3, 1, 1))
        self.extra_feat = nn.Sequential(*[ResBlock(n_feat, n_feat) for _ in range(extra_RBS)])
        self.fusion_conv = nn.Sequential(nn.Conv2d(n_feat * n_sequence, n_feat, 3, 1, 1))
        self.recons_net = nn.Sequential(*[ResBlock(n_feat, n_feat) for _ in range(recons_RBS)])
        self.out_conv = nn.Sequential(nn.Conv2d(n_feat, n_feat, 3, 1, 1), nn.Conv2d(n_feat, n_colors, 3, 1, 1))
        upsample = []
        for _ in range(int(math.log2(scale))):
            upsample += [nn.Conv2d(n_feat, n_feat * 4, 3, 1, 1), nn.PixelShuffle(2)]
        self.upsample_layers = nn.Sequential(*upsample)
        self.flow_net = Flow_PWC()
        self.kernel_net = KernelNet(in_c=n_colors * n_sequence, ksize=ksize)

    def recons_forward(self, frame_list):
        """Reconstruct the centre frame at ``scale`` x resolution from ``n_sequence`` LR frames, §1.3."""
        centre = self.n_sequence // 2
        features = [self.extra_feat(self.in_conv(frame)) for frame in frame_list]
        base = F.interpolate(frame_list[centre], scale_factor=self.scale, mode="bilinear", align_corners=False)
        aligned = []
        for i, feat in enumerate(features):
            if i == centre:
                aligned.append(feat)
            else:
                flow = self.flow_net(frame_list[centre], frame_list[i])
                aligned.append(self.flow_net.warp(feat, flow)[0])
        fusion = self.fusion_conv(torch.cat(aligned, dim=1))
        out = self.out_conv(self.upsample_layers(self.recons_net(fusion)))
        return out + base

    def forward(self, input_dict):
        """Run mode 'train', 'val' or 'infer' on x [B,n_sequence,C,h,w], §1.4; returns (dict, None)."""
        x = input_dict["x"]
        mode = input_dict["mode"]
        frame_list = [x[:, i] for i in range(self.n_sequence)]
        centre = self.n_sequence // 2
        est_kernel = self.kernel_net(torch.cat(frame_list, dim=1))
        if mode == "train":
            down_list = [blur_down(frame, est_kernel, self.scale) for frame in frame_list]
            down_recons = self.recons_forward(down_list)
            with torch.no_grad():
                recons = self.recons_forward(frame_list)
            input_cycle = blur_down(recons.detach(), est_kernel, self.scale)
            out = {"input": frame_list[centre], "recons_down": down_recons, "input_cycle": input_cycle,
                   "est_kernel": est_kernel}
        elif mode == "val":
            recons = self.recons_forward(frame_list)
            input_cycle = blur_down(recons, est_kernel, self.scale)
            down_list = [blur_down(frame, est_kernel, self.scale) for frame in frame_list]
            down_recons = self.recons_forward(down_list)
            out = {"input": frame_list[centre], "input_down": down_list[centre], "input_cycle": input_cycle,
                   "recons": recons, "recons_down": down_recons, "est_kernel": est_kernel}
        elif mode == "infer":
            out = {"recons": self.recons_forward(frame_list), "est_kernel": est_kernel}
        else:
            raise ValueError("unknown mode %r (expected 'train', 'val' or 'infer')" % (mode,))
        return out, None


# ----------------------------------------------------------------------------------------------------------
# Training losses (§4.5, Appendix A)
# ----------------------------------------------------------------------------------------------------------

def boundary_mask(ksize=13):
    """Boundary-loss weight map M [ksize,ksize], Appendix A: 30*(1 - g/max g) on the outer ring, 0 inside."""
    z = torch.arange(ksize, dtype=torch.float64) - ksize // 2
    g = torch.exp(-(z.view(-1, 1) ** 2 + z.view(1, -1) ** 2) / (2.0 * ksize ** 2))
    mask = 30.0 * (1.0 - g / g.max())
    margin = (ksize - 7) // 2 - 1
    mask[margin:ksize - margin, margin:ksize - margin] = 0.0
    return mask.float()


def kernel_boundary_loss(k):
    """Mean over all elements of |k * M| for k [B,1,ksize,ksize], §4.5."""
    mask = boundary_mask(k.shape[-1]).to(dtype=k.dtype, device=k.device)
    return (k * mask).abs().mean()


def kernel_sparse_loss(k):
    """Mean over all elements of |k|^0.5, zeros contributing 0 with zero gradient, §4.5."""
    magnitude = k.abs()
    positive = magnitude > 0
    safe = torch.where(positive, magnitude, torch.ones_like(magnitude))
    return torch.where(positive, safe.sqrt(), torch.zeros_like(magnitude)).mean()


def kernel_center_loss(k):
    """Batch mean of the MSE between each kernel's centre of mass (row, col) and (ksize//2, ksize//2), §4.5."""
    ksize = k.shape[-1]
    k2 = k.reshape(k.shape[0], ksize, ksize)
    idx = torch.arange(ksize, dtype=k.dtype, device=k.device)
    total = k2.sum(dim=(1, 2))
    centre_row = (idx * k2.sum(dim=2)).sum(dim=1) / total
    centre_col = (idx * k2.sum(dim=1)).sum(dim=1) / total
    want = float(ksize // 2)
    return (((centre_row - want) ** 2 + (centre_col - want) ** 2) / 2.0).mean()


def train_loss(out_dict):
    """Training objective of §4.5 on a 'train'-mode output dict.

    Returns (total, terms) where ``terms`` holds the unweighted values of 'L1', 'cycle', 'boundaries',
    'sparse' and 'center'; total = sum of LOSS_WEIGHTS[name] * terms[name].
    """
    k = out_dict["est_kernel"]
    terms = {
        "L1": F.l1_loss(out_dict["recons_down"], out_dict["input"]),
        "cycle": F.l1_loss(out_dict["input_cycle"], out_dict["input"]),
        "boundaries": kernel_boundary_loss(k),
        "sparse": kernel_sparse_loss(k),
        "center": kernel_center_loss(k),
    }
    total = sum(LOSS_WEIGHTS[name] * value for name, value in terms.items())
    return total, terms


# ----------------------------------------------------------------------------------------------------------
# Weight exchange with the Jittor port
# ----------------------------------------------------------------------------------------------------------

def state_dict_numpy(model):
    """Copy of ``model.state_dict()`` as {key: numpy array}, in registration order."""
    return {key: value.detach().cpu().numpy().copy() for key, value in model.state_dict().items()}


def load_numpy_state(model, arrays):
    """Load {key: numpy array} into ``model`` strictly: missing, unexpected or mis-shaped keys raise."""
    own = model.state_dict()
    missing = [key for key in own if key not in arrays]
    unexpected = [key for key in arrays if key not in own]
    wrong = ["%s: %s vs %s" % (key, tuple(np.shape(arrays[key])), tuple(own[key].shape))
             for key in own if key in arrays and tuple(np.shape(arrays[key])) != tuple(own[key].shape)]
    if missing or unexpected or wrong:
        raise ValueError("state mismatch; missing=%s unexpected=%s wrong_shape=%s" % (missing, unexpected, wrong))
    tensors = {key: torch.as_tensor(np.asarray(arrays[key]), dtype=own[key].dtype) for key in own}
    model.load_state_dict(tensors, strict=True)
