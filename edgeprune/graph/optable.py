"""Which rule handles which op: module types, functions and Tensor methods mapped to the rules."""

from __future__ import annotations

import operator
from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from edgeprune.graph.activations import glu, prelu
from edgeprune.graph.declared import DECLARED
from edgeprune.graph.extrema import extremum, tuple_field
from edgeprune.graph.generic import index_along, scan, sorting, statistic
from edgeprune.graph.recurrent import recurrent
from edgeprune.graph.rules import (
    Rule,
    _channel_dim,
    _dim_arg,
    _layer_norm_dims,
    batch_norm,
    branch_constant,
    channel_shuffle,
    channelwise,
    constant,
    conv,
    elementwise,
    linear,
    mixing_all,
    mixing_along,
    movement,
    norm_reduction,
    pad,
    reduction,
    remap,
    reshape,
    subset,
)
from edgeprune.graph.splits import chunk, split, tensor_split, unbind
from edgeprune.graph.windows import fold_windows, unfold_windows
from edgeprune.models.layers import BranchConstant, ChannelRemap, EmptyChannels

ELEMENTWISE_MODULES = (
    nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid, nn.Tanh, nn.ELU,
    nn.LeakyReLU, nn.Mish, nn.Hardtanh, nn.Softplus, nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d,
    nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout, nn.SELU, nn.CELU, nn.Softsign, nn.LogSigmoid,
    nn.Tanhshrink, nn.Softshrink, nn.Hardshrink, nn.Threshold, nn.RReLU,
)  # fmt: skip
CHANNELWISE_MODULES = (
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d, nn.Upsample, nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d,
    nn.LPPool1d, nn.LPPool2d, nn.LPPool3d,
)  # fmt: skip
# Per-channel statistics and affine (a norm over each channel's own positions): pruned like BatchNorm.
PER_CHANNEL_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.InstanceNorm1d,
                     nn.InstanceNorm2d, nn.InstanceNorm3d)  # fmt: skip

# torch.nn layers built of other layers, traced into rather than kept whole: their own layers have rules
TRACED_INTO = (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer, nn.TransformerEncoder, nn.TransformerDecoder,
               nn.Transformer)  # fmt: skip

# Output shape = input shape: the shape pass can skip running them.
SHAPE_PRESERVING_MODULES = (*ELEMENTWISE_MODULES, *PER_CHANNEL_NORMS, nn.PReLU)

MODULE_RULES: list[tuple[tuple[type, ...], Rule]] = [
    ((ChannelRemap,), remap),
    ((BranchConstant,), branch_constant),
    ((EmptyChannels,), constant),
    ((nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d), conv),
    ((nn.Linear,), linear),
    (PER_CHANNEL_NORMS, batch_norm),
    ((nn.PReLU,), prelu),
    ((nn.GLU,), glu),
    (ELEMENTWISE_MODULES, elementwise),
    (CHANNELWISE_MODULES, channelwise),
    ((nn.Flatten, nn.Unflatten, nn.PixelShuffle, nn.PixelUnshuffle), movement),
    ((nn.Unfold,), unfold_windows),
    ((nn.Fold,), fold_windows),
    ((nn.ConstantPad1d, nn.ConstantPad2d, nn.ConstantPad3d, nn.ZeroPad1d, nn.ZeroPad2d, nn.ZeroPad3d,
      nn.ReflectionPad1d, nn.ReflectionPad2d, nn.ReflectionPad3d, nn.ReplicationPad1d, nn.ReplicationPad2d,
      nn.ReplicationPad3d, nn.CircularPad1d, nn.CircularPad2d, nn.CircularPad3d), pad),
    ((nn.ChannelShuffle,), channel_shuffle),
    ((nn.LayerNorm,), mixing_along(_layer_norm_dims, "LayerNorm")),
    ((nn.GroupNorm, nn.LocalResponseNorm, nn.CrossMapLRN2d), mixing_along(_channel_dim, "a cross-channel norm")),
    ((nn.Softmax, nn.LogSoftmax, nn.Softmin), mixing_along(_dim_arg(1, -1), "softmax", fibers=True)),
    ((nn.Softmax2d,), mixing_along(lambda node, args, kwargs, module: [-3], "Softmax2d")),
    ((nn.MultiheadAttention,), mixing_all),
    ((nn.RNNBase,), recurrent),
]


# Subclasses of the layers above (by qualified name) that override forward but move channels as their base
# does: padding before a conv, an activation after a norm, a cast.
SAME_AS_BASE = {
    f"timm.layers.{name}" for name in (
        "conv2d_same.Conv2dSame", "conv2d_same.Conv2dSameExport", "linear.Linear", "norm.GroupNorm",
        "norm.GroupNorm1", "norm.LayerNorm", "norm.LayerNormFp32", "norm_act.BatchNormAct2d", "norm_act.GroupNormAct",
        "norm_act.GroupNorm1Act", "norm_act.LayerNormAct", "norm_act.LayerNormActFp32", "pool2d_same.AvgPool2dSame",
        "pool2d_same.MaxPool2dSame", "split_batchnorm.SplitBatchNorm2d", "std_conv.StdConv2d",
        "std_conv.StdConv2dSame", "std_conv.ScaledStdConv2d", "std_conv.ScaledStdConv2dSame",
    )
} | {"timm.models.metaformer.GroupNorm1NoBias"}  # fmt: skip
# LayerNorm subclasses that normalize NCHW over the channel axis (permute, norm, permute back).
_CHANNEL_LAYER_NORM = mixing_along(_channel_dim, "a channel LayerNorm")
SUBCLASS_RULES: dict[str, Rule] = {
    name: _CHANNEL_LAYER_NORM
    for name in ("torchvision.models.convnext.LayerNorm2d", "timm.layers.norm.LayerNorm2d",
                 "timm.layers.norm.LayerNorm2dFp32", "timm.layers.norm.LayerNormExp2d",
                 "timm.layers.norm_act.LayerNormAct2d", "timm.layers.norm_act.LayerNormAct2dFp32",
                 "timm.models.metaformer.LayerNorm2dNoBias")
}  # fmt: skip

_RULE_BY_TYPE: dict[type, Rule | None] = {}


def module_rule(module: nn.Module) -> Rule | None:
    """The rule of a layer kept whole while tracing; None: fx traces into it and its ops decide."""
    cls = type(module)
    if cls not in _RULE_BY_TYPE:
        _RULE_BY_TYPE[cls] = _find_rule(cls)
    return _RULE_BY_TYPE[cls]


def forget_rules() -> None:
    """Drop the rules found per class (a declaration, edgeprune.graph.declared, may change them)."""
    _RULE_BY_TYPE.clear()


_DECLARED_RULES = {"elementwise": elementwise, "channelwise": channelwise, "mixing": mixing_all}


def _find_rule(cls: type) -> Rule | None:
    declared = next((DECLARED[base] for base in cls.__mro__ if base in DECLARED), None)
    if declared is not None:
        return _DECLARED_RULES[declared]
    name = f"{cls.__module__}.{cls.__qualname__}"
    if name in SUBCLASS_RULES:
        return SUBCLASS_RULES[name]
    for types, rule in MODULE_RULES:
        base = next((t for t in types if issubclass(cls, t)), None)
        if base is not None:
            trusted = cls.forward is base.forward or cls.__module__.startswith("torch.") or name in SAME_AS_BASE
            # A subclass with a forward of its own may do anything (normalize over another axis): trace into it.
            return rule if trusted else None
    return None


# ---------------------------------------------------------------------------------- functions and methods
def _wrapped(qualname: str):
    """A function that torchvision hides from fx tracing with ``torch.fx.wrap`` (kept as one node)."""
    module_name, _, attr = qualname.rpartition(".")
    try:
        module = __import__(module_name, fromlist=[attr])
        return getattr(module, attr)
    except (ImportError, AttributeError):
        return None


_ELEMENTWISE_FUNCS = [
    operator.add, operator.iadd, operator.sub, operator.isub, operator.mul, operator.imul, operator.truediv,
    operator.itruediv, operator.neg, torch.add, torch.sub, torch.mul, torch.div, torch.relu, torch.sigmoid,
    torch.tanh, torch.exp, torch.clamp, torch.abs, torch.where, F.relu, F.relu6, F.gelu, F.silu, F.hardswish,
    F.hardsigmoid, F.sigmoid, F.tanh, F.elu, F.leaky_relu, F.mish, F.hardtanh, F.softplus, F.dropout,
    F.dropout1d, F.dropout2d, F.dropout3d, _wrapped("torchvision.ops.stochastic_depth"),
    # position by position, whatever the function: a removed channel is zeroed where it is read, not here
    operator.pow, operator.ipow, torch.pow, torch.sqrt, torch.rsqrt, torch.square, torch.log, torch.log1p,
    torch.sin, torch.cos, torch.erf, torch.reciprocal, torch.sign, torch.floor, torch.ceil, torch.round,
    torch.maximum, torch.minimum, torch.clamp_min, torch.clamp_max, torch.addcmul, torch.addcdiv, F.selu, F.celu,
    F.logsigmoid, F.softsign, F.rrelu, F.threshold, F.hardshrink, F.softshrink, F.tanhshrink,
]  # fmt: skip
_MOVEMENT_FUNCS = [
    torch.flatten, torch.cat, torch.concat, torch.stack, torch.transpose, torch.permute, torch.squeeze,
    torch.unsqueeze, torch.roll, torch.movedim, F.pixel_shuffle, F.pixel_unshuffle, torch.swapaxes, torch.swapdims,
    torch.flip, torch.repeat_interleave, torch.tile, torch.rot90,
]  # fmt: skip
_CHANNELWISE_FUNCS = [
    F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d, F.adaptive_max_pool2d, F.avg_pool2d,
    F.max_pool2d, F.interpolate, F.avg_pool1d, F.max_pool1d, F.max_pool3d, F.avg_pool3d, F.adaptive_max_pool1d,
    F.adaptive_max_pool3d, F.lp_pool1d, F.lp_pool2d,
]  # fmt: skip
_OPAQUE_FUNCS = [
    torch.matmul, operator.matmul, torch.bmm, torch.baddbmm, torch.einsum, F.linear, F.conv2d,
    F.scaled_dot_product_attention, F.multi_head_attention_forward,
    _wrapped("torchvision.models.swin_transformer.shifted_window_attention"),
    _wrapped("torchvision.models.swin_transformer._patch_merging_pad"),
    _wrapped("torchvision.models.swin_transformer._get_relative_position_bias"),
]  # fmt: skip

FUNCTION_RULES: dict[Callable, Rule] = {
    **{f: elementwise for f in _ELEMENTWISE_FUNCS if f is not None},
    **{f: movement for f in _MOVEMENT_FUNCS},
    **{f: channelwise for f in _CHANNELWISE_FUNCS},
    **{f: mixing_all for f in _OPAQUE_FUNCS if f is not None},
    torch.reshape: reshape,
    operator.getitem: subset,
    getattr: tuple_field,
    torch.narrow: subset,
    torch.select: subset,
    torch.unbind: unbind,
    torch.tensor_split: tensor_split,
    torch.chunk: chunk,
    torch.channel_shuffle: channel_shuffle,
    F.channel_shuffle: channel_shuffle,
    torch.split: split,
    F.pad: pad,
    F.glu: glu,
    torch.zeros_like: constant,
    torch.ones_like: constant,
    F.unfold: unfold_windows,
    F.fold: fold_windows,
    torch.mean: reduction,
    torch.norm: norm_reduction,
    torch.linalg.vector_norm: norm_reduction,
    torch.sum: reduction,
    torch.amax: reduction,
    **dict.fromkeys([torch.amin, torch.prod, torch.logsumexp, torch.nansum, torch.nanmean, torch.argmax,
                     torch.argmin, torch.all, torch.any], reduction),
    torch.var: statistic,
    torch.std: statistic,
    torch.sort: sorting(1),
    torch.topk: sorting(2),
    torch.kthvalue: sorting(2),
    **dict.fromkeys([torch.cumsum, torch.cumprod, torch.logcumsumexp], scan(1)),
    **dict.fromkeys([torch.cummax, torch.cummin], scan(1, pair=True)),
    torch.diff: scan(2, -1),
    torch.index_select: index_along,
    torch.gather: index_along,
    torch.max: extremum,
    torch.min: extremum,
    F.softmax: mixing_along(_dim_arg(1, -1), "softmax", fibers=True),
    F.log_softmax: mixing_along(_dim_arg(1, -1), "softmax", fibers=True),
    torch.softmax: mixing_along(_dim_arg(1, -1), "softmax", fibers=True),
    F.layer_norm: mixing_along(_layer_norm_dims, "layer_norm"),
    F.group_norm: mixing_along(_channel_dim, "group_norm"),
    F.normalize: mixing_along(_dim_arg(2, 1), "normalize"),
}

METHOD_RULES: dict[str, Rule] = {
    **dict.fromkeys(
        ["add", "add_", "sub", "mul", "mul_", "div", "relu", "relu_", "sigmoid", "tanh", "contiguous",
         "clone", "float", "half", "to", "type_as", "detach", "clamp", "neg", "exp", "abs", "pow", "pow_",
         "sqrt", "rsqrt", "square", "log", "log1p", "sin", "cos", "erf", "reciprocal", "sign", "floor", "ceil",
         "round", "maximum", "minimum", "clamp_", "clamp_min", "clamp_max", "sigmoid_", "tanh_", "div_", "sub_",
         "exp_", "abs_", "neg_", "addcmul", "addcmul_", "addcdiv", "type"],
        elementwise,
    ),
    **dict.fromkeys(["permute", "transpose", "flatten", "squeeze", "unsqueeze", "expand", "expand_as",
                     "repeat", "repeat_interleave", "tile", "rot90", "unfold", "movedim", "swapaxes", "swapdims",
                     "flip", "roll", "view_as", "reshape_as"],
                    movement),
    **dict.fromkeys(["view", "reshape"], reshape),
    **dict.fromkeys(["narrow", "select"], subset),
    "unbind": unbind,
    "chunk": chunk,
    "split": split,
    "tensor_split": tensor_split,
    **dict.fromkeys(["mean", "sum", "amax", "amin", "prod", "logsumexp", "nansum", "nanmean", "argmax", "argmin",
                     "all", "any"], reduction),
    **dict.fromkeys(["var", "std"], statistic),
    "sort": sorting(1),
    "topk": sorting(2),
    "kthvalue": sorting(2),
    **dict.fromkeys(["cumsum", "cumprod", "logcumsumexp"], scan(1)),
    **dict.fromkeys(["cummax", "cummin"], scan(1, pair=True)),
    "diff": scan(2, -1),
    **dict.fromkeys(["index_select", "gather"], index_along),
    "norm": norm_reduction,
    **dict.fromkeys(["max", "min"], extremum),
    "softmax": mixing_along(_dim_arg(1, -1), "softmax", fibers=True),
    **dict.fromkeys(["matmul", "bmm"], mixing_all),
    **dict.fromkeys(["new_zeros", "new_ones", "new_empty", "zero_"], constant),
}  # fmt: skip

# Non-tensor results (shapes, sizes, Python arithmetic) need no channel bookkeeping.
SHAPE_METHODS = {"size", "dim", "numel", "nelement", "ndimension", "__len__"}
