"""Sequence-model architectures users bring to edge devices, written small, for the 1-D sweep (``zoo:<name>``):
each a factory with ``input_size = (channels, length)``. Random weights; the sweep checks that they plan."""

import torch
import torch.nn as nn
import torch.nn.functional as F


def _cbr(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, dilation: int = 1) -> nn.Sequential:
    pad = dilation * (k - 1) // 2
    return nn.Sequential(nn.Conv1d(cin, cout, k, stride, pad, dilation, groups, bias=False), nn.BatchNorm1d(cout),
                         nn.ReLU())  # fmt: skip


def _sized(factory, size: tuple[int, int]):
    factory.input_size = size
    return factory


class _Pool(nn.Module):
    def __init__(self, width: int, classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(-1))


def m5() -> nn.Module:
    """Raw-audio CNN (Dai et al. 2017): a wide strided first conv on 8,000 samples."""
    return nn.Sequential(_cbr(1, 64, 80, 4), nn.MaxPool1d(4), _cbr(64, 64, 3), nn.MaxPool1d(4), _cbr(64, 128, 3),
                         nn.MaxPool1d(4), _cbr(128, 256, 3), nn.MaxPool1d(4), _Pool(256, 35))  # fmt: skip


class _SeparableBlock(nn.Module):
    """QuartzNet's block: depthwise + pointwise convs, repeated, with a residual pointwise path."""

    def __init__(self, cin: int, cout: int, k: int, repeat: int = 2) -> None:
        super().__init__()
        layers, c = [], cin
        for _ in range(repeat):
            layers += [nn.Conv1d(c, c, k, padding=k // 2, groups=c, bias=False), _cbr(c, cout, 1)]
            c = cout
        self.body = nn.Sequential(*layers)
        self.res = nn.Sequential(nn.Conv1d(cin, cout, 1, bias=False), nn.BatchNorm1d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.res(x))


def quartznet() -> nn.Module:
    return nn.Sequential(_cbr(64, 128, 33, 2, groups=64), _SeparableBlock(128, 128, 33), _SeparableBlock(128, 160, 39),
                         _SeparableBlock(160, 192, 51), _cbr(192, 256, 1), nn.Conv1d(256, 29, 1))  # fmt: skip


class _TemporalBlock(nn.Module):
    """TCN (Bai et al. 2018): dilated causal convs (padded, then the right end chomped), weight-normalized."""

    def __init__(self, cin: int, cout: int, k: int, dilation: int) -> None:
        super().__init__()
        wn = nn.utils.parametrizations.weight_norm
        self.pad = (k - 1) * dilation
        self.c1 = wn(nn.Conv1d(cin, cout, k, padding=self.pad, dilation=dilation))
        self.c2 = wn(nn.Conv1d(cout, cout, k, padding=self.pad, dilation=dilation))
        self.down = nn.Conv1d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.c1(x)[:, :, : -self.pad])
        y = torch.relu(self.c2(y)[:, :, : -self.pad])
        return torch.relu(y + self.down(x))


def tcn() -> nn.Module:
    blocks = [_TemporalBlock(8 if i == 0 else 64, 64, 3, 2**i) for i in range(4)]
    return nn.Sequential(*blocks, _Pool(64, 5))


class _WaveNet(nn.Module):
    """Gated dilated convs (tanh x sigmoid), residual and skip 1x1 convs summed over layers."""

    def __init__(self, cin: int = 16, res: int = 32, skip: int = 64, layers: int = 6) -> None:
        super().__init__()
        self.inp = nn.Conv1d(cin, res, 1)
        self.filt = nn.ModuleList(nn.Conv1d(res, res, 2, dilation=2**i, padding=2**i) for i in range(layers))
        self.gate = nn.ModuleList(nn.Conv1d(res, res, 2, dilation=2**i, padding=2**i) for i in range(layers))
        self.res = nn.ModuleList(nn.Conv1d(res, res, 1) for _ in range(layers))
        self.skip = nn.ModuleList(nn.Conv1d(res, skip, 1) for _ in range(layers))
        self.out = nn.Sequential(nn.ReLU(), nn.Conv1d(skip, skip, 1), nn.ReLU(), nn.Conv1d(skip, 10, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, total = self.inp(x), 0
        n = x.shape[-1]
        for f, g, r, s in zip(self.filt, self.gate, self.res, self.skip, strict=True):
            z = torch.tanh(f(x)[..., :n]) * torch.sigmoid(g(x)[..., :n])
            x = x + r(z)
            total = total + s(z)
        return self.out(total)


def wavenet() -> nn.Module:
    return _WaveNet()


class _CRNN(nn.Module):
    """Conv features over time read by a bidirectional GRU, a class score per step (a CTC recognizer)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential(_cbr(40, 64, 5), _cbr(64, 96, 5, 2), _cbr(96, 128, 3))
        self.rnn = nn.GRU(128, 64, bidirectional=True, batch_first=True)
        self.fc = nn.Linear(128, 30)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.rnn(self.conv(x).transpose(1, 2))
        return self.fc(y)


def crnn() -> nn.Module:
    return _CRNN()


class _ConformerConv(nn.Module):
    """Conformer's convolution module: LayerNorm, pointwise conv to 2x, GLU, depthwise conv, BN, SiLU, pointwise."""

    def __init__(self, d: int, k: int = 15) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.pw1 = nn.Conv1d(d, 2 * d, 1)
        self.dw = nn.Conv1d(d, d, k, padding=k // 2, groups=d)
        self.bn = nn.BatchNorm1d(d)
        self.pw2 = nn.Conv1d(d, d, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, T, d)
        y = self.norm(x).transpose(1, 2)
        y = self.pw2(F.silu(self.bn(self.dw(F.glu(self.pw1(y), dim=1)))))
        return x + y.transpose(1, 2)


class _Conformer(nn.Module):
    def __init__(self, feats: int = 80, d: int = 96) -> None:
        super().__init__()
        self.sub = nn.Sequential(_cbr(feats, d, 3, 2), _cbr(d, d, 3, 2))
        self.ff = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 4 * d), nn.SiLU(), nn.Linear(4 * d, d))
        self.attn = nn.MultiheadAttention(d, 4, batch_first=True)
        self.conv = _ConformerConv(d)
        self.out = nn.Linear(d, 30)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.sub(x).transpose(1, 2)
        x = x + 0.5 * self.ff(x)
        x = x + self.attn(x, x, x, need_weights=False)[0]
        return self.out(self.conv(x))


def conformer() -> nn.Module:
    return _Conformer()


class _Basic1d(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, se: bool = False) -> None:
        super().__init__()
        self.body = nn.Sequential(_cbr(cin, cout, 7, stride), nn.Conv1d(cout, cout, 7, 1, 3, bias=False),
                                  nn.BatchNorm1d(cout))  # fmt: skip
        self.se = nn.Sequential(nn.AdaptiveAvgPool1d(1), nn.Conv1d(cout, cout // 4, 1), nn.ReLU(),
                                nn.Conv1d(cout // 4, cout, 1), nn.Sigmoid()) if se else None  # fmt: skip
        self.short = nn.Sequential(nn.Conv1d(cin, cout, 1, stride, bias=False), nn.BatchNorm1d(cout)) \
            if stride != 1 or cin != cout else nn.Identity()  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        if self.se is not None:
            y = y * self.se(y)
        return torch.relu(y + self.short(x))


def _resnet1d(se: bool) -> nn.Module:
    widths = (64, 64, 128, 256)
    blocks = [_Basic1d(a, b, 1 if i == 0 else 2, se) for i, (a, b) in enumerate(zip(widths, widths[1:]))]
    return nn.Sequential(_cbr(12, 64, 15, 2), nn.MaxPool1d(3, 2, 1), *blocks, _Pool(256, 9))


def ecg_resnet1d() -> nn.Module:
    """A 12-lead ECG classifier: ResNet-style 1-D blocks."""
    return _resnet1d(False)


def se_resnet1d() -> nn.Module:
    """The same with squeeze-and-excitation gates."""
    return _resnet1d(True)


class _Inception(nn.Module):
    """InceptionTime's module: a bottleneck, three wide convs and a max-pool branch, concatenated."""

    def __init__(self, cin: int, nf: int = 32) -> None:
        super().__init__()
        self.bottleneck = nn.Conv1d(cin, nf, 1, bias=False)
        self.convs = nn.ModuleList(nn.Conv1d(nf, nf, k, padding=k // 2, bias=False) for k in (9, 19, 39))
        self.pool = nn.Sequential(nn.MaxPool1d(3, 1, 1), nn.Conv1d(cin, nf, 1, bias=False))
        self.bn = nn.BatchNorm1d(4 * nf)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.bottleneck(x)
        return torch.relu(self.bn(torch.cat([c(b) for c in self.convs] + [self.pool(x)], 1)))


def inception_time() -> nn.Module:
    return nn.Sequential(_Inception(3), _Inception(128), _Inception(128), _Pool(128, 6))


for _f, _s in ((m5, (1, 8000)), (quartznet, (64, 256)), (tcn, (8, 128)), (wavenet, (16, 256)), (crnn, (40, 100)),
               (conformer, (80, 64)), (ecg_resnet1d, (12, 1000)), (se_resnet1d, (12, 1000)),
               (inception_time, (3, 256))):  # fmt: skip
    _sized(_f, _s)
