"""timm models by name: ``timm:<name>`` builds any model of the installed timm (the ``timm`` extra).

timm is imported on first use. Input size and normalization come from the model's pretrained config.
No hub is used: weights come from a local file, ``create_model("timm:<name>", weights=PATH)`` (see
:mod:`edgeprune.models.weights`), or with ``pretrained=True`` from
``<data folder>/pretrained/timm/<name>.(safetensors|pth|pth.tar|bin)``.
"""

from __future__ import annotations

import functools

import torch.nn as nn

from edgeprune.errors import DataNotFoundError, require
from edgeprune.models.registry import ModelEntry, UnknownModelError, register_prefix
from edgeprune.models.weights import load_weights
from edgeprune.paths import data_root, looked_in

PREFIX = "timm:"
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pth.tar", ".bin")

# Checked by tests/test_models_matrix.py: traced, shrunk by a seeded random non-uniform plan, held to the
# masked-equivalence oracle and run through ONNX (name -> the input side the checks use). These are what
# `edgeprune models --family timm` lists; any other timm name builds too.
CHECKED: dict[str, int] = {
    **dict.fromkeys([
        # mobile CNNs
        "mobilenetv1_100", "mobilenetv3_large_100", "mobilenetv3_small_050", "mobilenetv4_conv_small",
        "mobilenetv4_conv_medium", "mobilenetv4_hybrid_medium", "efficientnet_lite0", "efficientnet_b0",
        "ghostnet_100", "ghostnetv2_100", "ghostnetv3_050", "repghostnet_050", "repvgg_a0", "mobileone_s0",
        "lcnet_050", "fbnetc_100", "mnasnet_small", "semnasnet_050", "spnasnet_100", "hardcorenas_a", "tinynet_e",
        "mixnet_s", "rexnet_100", "starnet_s050", "fastvit_t8", "edgenext_xx_small",
        # other CNNs: split widths (Res2Net, CSP), channel LayerNorms, weight standardization
        "res2net50_14w_8s", "dla60_res2net", "cs3darknet_s", "convnext_atto", "inception_next_atto",
        "fasternet_t0", "hgnetv2_b0", "regnetx_002", "ese_vovnet19b_slim_dw", "resnet18d", "nf_regnet_b0",
        # Python code on shapes and devices, traced at the input size (graph/branch_values.py)
        "mobilevit_xxs", "mobilevitv2_050", "efficientvit_b0", "efficientvit_m0", "tiny_vit_5m_224", "vgg11_bn",
    ], 64),
    "efficientformerv2_s0": 224,  # attention sized for 224 inputs
    "levit_128s": 224,
}  # fmt: skip

def _timm():
    return require("timm", "timm")


def timm_name(name: str) -> str:
    """``timm:mobilenetv3_large_100`` -> ``mobilenetv3_large_100``."""
    return name.removeprefix(PREFIX)


@functools.cache
def timm_entry(name: str) -> ModelEntry:
    """The registry entry for ``timm:<name>``, from the model's pretrained config (no model is built)."""
    timm = _timm()
    arch = timm_name(name)
    if not timm.is_model(arch):
        close = timm.list_models(f"*{arch}*")[:5]
        hint = f" Did you mean: {', '.join(PREFIX + c for c in close)}?" if close else ""
        raise UnknownModelError(f"timm has no model {arch!r} (timm {timm.__version__}).{hint}")
    cfg = timm.get_pretrained_cfg(arch)
    resolve = require("timm.data", "timm").resolve_data_config
    data = resolve(pretrained_cfg=cfg.to_dict()) if cfg is not None else {}
    keep = ("mean", "std", "crop_pct", "crop_mode", "interpolation")
    input_size = tuple(data.get("input_size", (3, 224, 224)))
    return ModelEntry(
        name,
        functools.partial(build_timm_model, arch),
        "timm",
        input_size,
        CHECKED.get(arch, input_size[1] if cfg is not None and cfg.fixed_input_size else 64),
        has_pretrained=cfg is not None,
        size_kwarg="img_size" if cfg is not None and cfg.fixed_input_size else None,
        data_config={k: data[k] for k in keep if k in data},
        deploy_form=to_deploy_form,
    )


def build_timm_model(arch: str, pretrained: bool = False, **kwargs) -> nn.Module:
    """``timm.create_model(arch, pretrained=False, **kwargs)``; ``pretrained`` loads the local weights file."""
    model = _timm().create_model(arch, pretrained=False, **kwargs)
    if pretrained:
        load_weights(model, find_timm_weights(arch))
    return model


# The methods timm's reparameterize_model calls on a block that has an inference form.
REPARAMETERIZE_HOOKS = ("fuse", "reparameterize", "switch_to_deploy")


def to_deploy_form(model: nn.Module) -> nn.Module:
    """The model as it is deployed: timm's ``reparameterize_model`` fuses RepVGG / MobileOne branches and
    conv+norm pairs. The training form's branches would be timed, exported and pruned as separate layers, and
    its identity branches tie every layer of a stage into one residual stream (RepVGG could not be pruned)."""
    if not any(hasattr(m, hook) for m in model.modules() for hook in REPARAMETERIZE_HOOKS):
        return model
    training = model.training
    model.eval()  # some blocks fuse only in eval mode (EfficientViM asserts it); the norms' statistics are the same
    fused = require("timm.utils.model", "timm").reparameterize_model(model, inplace=True)
    return fused.train(training)


def find_timm_weights(arch: str):
    """The local weights file of a timm model under ``<data folder>/pretrained/timm/``."""
    root = data_root()
    if root is not None:
        for suffix in WEIGHT_SUFFIXES:
            path = root / "pretrained" / "timm" / f"{arch}{suffix}"
            if path.is_file():
                return path
    raise DataNotFoundError(
        f"no local weights for timm model {arch!r}: looked for pretrained/timm/{arch}"
        f"({'|'.join(WEIGHT_SUFFIXES)}) in the data folder ({looked_in()}). No hub is used: put the file there, "
        "or pass a file (Python: create_model(..., weights=PATH))."
    )


register_prefix(PREFIX, "timm", timm_entry, [PREFIX + n for n in CHECKED])
