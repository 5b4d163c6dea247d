"""KernelNet: estimates one 13x13 blur kernel per sample from the 5 stacked LR frames (upstream-conventions §1)."""
import numpy as np

from ..runtime import jittor

jt = jittor()
nn = jt.nn


def adaptive_pool_matrix(size, bins):
    """[bins, size] averaging matrix with PyTorch's AdaptiveAvgPool bin rule.

    Bin i averages input indices [floor(i*size/bins), ceil((i+1)*size/bins)): bins overlap by one pixel
    when size is not a multiple of bins. Jittor's builtin uses uniform windows instead.
    """
    matrix = np.zeros((bins, size), dtype=np.float32)
    for i in range(bins):
        start = (i * size) // bins
        end = -((-(i + 1) * size) // bins)
        matrix[i, start:end] = 1.0 / (end - start)
    return matrix


class AdaptiveAvgPool2d(nn.Module):
    """Adaptive average pooling to (bins x bins) with PyTorch's bin rule, as two matmuls.

    The matmul form compiles no new kernel per input size (Jittor's builtin pool does).
    """

    def __init__(self, bins):
        super().__init__()
        self.bins = bins

    def execute(self, x):
        b, c, h, w = x.shape
        rows = jt.array(adaptive_pool_matrix(h, self.bins))            # [bins, h]
        cols = jt.array(adaptive_pool_matrix(w, self.bins))            # [bins, w]
        x = jt.matmul(x.reshape(b * c * h, w), cols.transpose())        # [b*c*h, bins]
        x = x.reshape(b * c, h, self.bins).transpose(0, 2, 1)           # [b*c, bins, h]
        x = jt.matmul(x.reshape(-1, h), rows.transpose())               # [b*c*bins_w, bins_h]
        return x.reshape(b, c, self.bins, self.bins).transpose(0, 1, 3, 2)


class CALayer(nn.Module):
    """Channel attention: x * sigmoid(conv(relu(conv(global average of x))))."""

    def __init__(self, channel=64, reduction=16):
        super().__init__()
        self.conv_du = nn.Sequential(
            nn.Conv2d(channel, channel // reduction, 1, padding=0),
            nn.ReLU(),
            nn.Conv2d(channel // reduction, channel, 1, padding=0),
            nn.Sigmoid(),
        )

    def execute(self, x):
        return x * self.conv_du(x.mean(dims=(2, 3), keepdims=True))


class RCAB(nn.Module):
    """Residual channel-attention block: body(x) + x, body = conv, ReLU, conv, CALayer."""

    def __init__(self, n_feat=64, kernel_size=3, reduction=16):
        super().__init__()
        pad = kernel_size // 2
        self.body = nn.Sequential(
            nn.Conv2d(n_feat, n_feat, kernel_size, padding=pad),
            nn.ReLU(),
            nn.Conv2d(n_feat, n_feat, kernel_size, padding=pad),
            CALayer(n_feat, reduction),
        )

    def execute(self, x):
        return self.body(x) + x


class KernelNet(nn.Module):
    """Frames [B, in_c, h, w] -> blur kernel [B, 1, ksize, ksize], positive and summing to 1."""

    def __init__(self, in_c=15, ksize=13):
        super().__init__()
        self.ksize = ksize
        self.in_conv = nn.Conv2d(in_c, 64, 3, padding=1)
        self.body1 = nn.Sequential(RCAB(64), RCAB(64))
        self.global_pool = AdaptiveAvgPool2d(ksize)
        self.body2 = nn.Sequential(
            RCAB(64),
            RCAB(64),
            nn.Conv2d(64, 32, 3, padding=1),
            nn.Conv2d(32, 1, 3, padding=1),
        )
        taps = ksize * ksize
        self.fc_net = nn.Sequential(nn.Linear(taps, 1000), nn.Linear(1000, taps), nn.Softmax(dim=1))

    def start_from_kernel(self, kernel, input_weight=0.1):
        """Make the estimate start near ``kernel`` [ksize, ksize] for every input: the last linear layer's bias
        becomes log(kernel) (the softmax turns it back into the kernel) and its weights are scaled by
        ``input_weight``, so the input still moves the estimate, at first a little.

        Why: from the default initialisation the estimate is a uniform 13x13 box, and on a CPU budget (large
        learning rate, few steps) the kernel priors and the reconstruction loss drive it to a single tap within
        a few dozen steps, where the softmax saturates and it stays: the network then learns to undo plain
        decimation and never learns to deblur. Starting from a plausible blur avoids that trap.
        """
        last = self.fc_net[1]
        floor = np.float32(1e-6)
        logits = np.log(np.maximum(np.asarray(kernel, np.float32).reshape(-1), floor))
        last.bias.assign(jt.array(logits - logits.mean()))
        last.weight.assign(last.weight * input_weight)

    def execute(self, x):
        b = x.shape[0]
        x = self.body2(self.global_pool(self.body1(self.in_conv(x))))
        kernel = self.fc_net(x.reshape(b, self.ksize * self.ksize))
        return kernel.reshape(b, 1, self.ksize, self.ksize)
