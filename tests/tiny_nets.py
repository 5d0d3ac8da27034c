"""Small user-factory models for tests (importable as tiny_nets:NAME with tests/ on the path)."""

import torch
import torch.nn as nn
import torch.nn.functional as F


def plain_cnn() -> nn.Module:
    """No batch norm: two processes on half batches compute exactly what one process does."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
    )  # fmt: skip


class _Spectrum(nn.Module):
    def forward(self, x):
        return torch.fft.fft(x, dim=1).real


def fft_cnn() -> nn.Module:
    """An op the channel graph does not know (an FFT over the channels) between two convs."""
    return nn.Sequential(nn.Conv2d(3, 8, 1), nn.Conv2d(8, 8, 1), _Spectrum(), nn.Conv2d(8, 4, 1))


class _Mobile(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, 16, 3, padding=1), nn.ReLU()]
        for _ in range(2):
            layers += [nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.Hardswish(), nn.Conv2d(16, 16, 1), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        return self.fc(self.features(x).mean((2, 3)))


def mobile_net() -> nn.Module:
    """Stem 3x3, a depthwise 3x3 + pointwise 1x1 pair with hard-swish, twice, and a classifier (eval mode): one
    layer of each kind int8 quantizers treat apart."""
    return _Mobile().eval()


class PadToFour(nn.Module):
    """Pads the feature map to a multiple of 4 before its conv: an ``if`` on the size (traced at the example's)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        if x.shape[-1] % 4:
            x = F.pad(x, (0, 4 - x.shape[-1] % 4, 0, 4 - x.shape[-2] % 4))
        return self.conv(x)


class ClampLoud(nn.Module):
    """Clamps its input only where some value is large: an ``if`` on the tensor's values fx cannot follow."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        if x.abs().amax() > 100:
            x = x.clamp(-100, 100)
        return self.conv(x)


class _OpaqueBlockNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 12, 1), nn.Conv2d(12, 8, 1)
        self.block = ClampLoud(12)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        y = self.c(self.block(self.b(torch.relu(self.a(x)))))
        return self.fc(y.mean((2, 3)))


def opaque_block_cnn() -> nn.Module:
    """Convs around a block torch.fx cannot trace (``block``: prunable only around it, with freeze_unknown)."""
    return _OpaqueBlockNet()


class _SharedBlockNet(nn.Module):
    """One position-encoding conv registered in two blocks and run by both (CoaT shares its ``cpe``)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        shared = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.blocks = nn.ModuleList(nn.ModuleDict({"pos": shared, "mlp": nn.Conv2d(8, 8, 1)}) for _ in range(2))
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        y = self.stem(x)
        for block in self.blocks:
            y = y + block["mlp"](torch.relu(block["pos"](y)))
        return self.fc(y.mean((2, 3)))


def shared_block_cnn() -> nn.Module:
    """A layer that two blocks share: its weights are one tensor under two names in the state dict."""
    return _SharedBlockNet()


def padded_cnn() -> nn.Module:
    """Convs around a block whose code pads to a multiple of 4 by the input's size (an ``if`` on a shape)."""
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), PadToFour(8), nn.ReLU(), nn.Conv2d(8, 4, 1))


def gray_cnn() -> nn.Module:
    """A one-channel model at 40 x 40 (a grayscale sensor's): it says so with the factory's ``input_size``."""
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 2))  # fmt: skip


gray_cnn.input_size = (1, 40, 40)


def misdeclared_cnn() -> nn.Module:
    return plain_cnn()


misdeclared_cnn.input_size = (224, 224)


def sequence_cnn() -> nn.Module:
    """1-D convs over a sequence (audio features) that does not declare its input: traced as an image, it fails."""
    return nn.Sequential(nn.Conv1d(40, 16, 3), nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(16, 2))


class _KeywordSpotter(nn.Module):
    """A small TC-ResNet-style keyword spotter: 1-D convs over 10 features by 24 frames, a residual block."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv1d(10, 16, 3, padding=1, bias=False), nn.BatchNorm1d(16), nn.ReLU())
        self.block = nn.Sequential(nn.Conv1d(16, 24, 3, 2, 1, bias=False), nn.BatchNorm1d(24), nn.ReLU(),
                                   nn.Conv1d(24, 24, 3, padding=1, bias=False), nn.BatchNorm1d(24))  # fmt: skip
        self.skip = nn.Sequential(nn.Conv1d(16, 24, 1, 2, bias=False), nn.BatchNorm1d(24))
        self.head = nn.Linear(24, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        return self.head(torch.relu(self.block(x) + self.skip(x)).mean(-1))


def keyword_spotter() -> nn.Module:
    return _KeywordSpotter()


keyword_spotter.input_size = (10, 24)  # (channels, length): a sequence model


class _CausalBlock(nn.Module):
    """A TCN block: weight-normalized dilated convs, padded then chomped to stay causal, and a residual."""

    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        wn = nn.utils.parametrizations.weight_norm
        self.pad = 2 * dilation
        self.c1 = wn(nn.Conv1d(channels, 16, 3, padding=self.pad, dilation=dilation))
        self.c2 = wn(nn.Conv1d(16, channels, 3, padding=self.pad, dilation=dilation))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.c1(x)[:, :, : -self.pad])
        return torch.relu(x + self.c2(y)[:, :, : -self.pad])


def causal_tcn() -> nn.Module:
    return nn.Sequential(nn.Conv1d(6, 12, 1), _CausalBlock(12, 1), _CausalBlock(12, 2), nn.Conv1d(12, 4, 1))


causal_tcn.input_size = (6, 32)


def wide_cnn() -> nn.Module:
    """A camera model at a 3:5 aspect (24 x 40): an input that is not square."""
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 16, 3, 2, 1),
                         nn.BatchNorm2d(16), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(16, 2))  # fmt: skip


wide_cnn.input_size = (3, 24, 40)
