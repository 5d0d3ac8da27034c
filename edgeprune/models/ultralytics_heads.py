"""What edgeprune reads from an Ultralytics head: its outputs before decoding, as the trace (torch.fx) and the
exported model compute them (see :class:`edgeprune.models.ultralytics_models.YoloRaw`)."""

from __future__ import annotations

import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.fx import _symbolic_trace

# Heads whose raw outputs run over every anchor of every scale, and the heads with one map per image.
ANCHOR_HEADS = ("Detect", "v10Detect", "Segment", "Pose", "OBB", "OBB26", "Segment26", "Pose26")
DENSE_HEADS = ("Depth", "SemanticSegment")


def symbolic_tracing() -> bool:
    """Whether torch.fx's symbolic trace (edgeprune's graph) runs this code; not torch.export (the deployed
    program must not compute the training-only branches)."""
    check = getattr(_symbolic_trace, "is_fx_symbolic_tracing", None)
    if check is not None:
        return check()
    with warnings.catch_warnings():  # older torch: is_fx_tracing warns that torch.export sets it too
        warnings.simplefilter("ignore")
        return _symbolic_trace.is_fx_tracing() and not torch.compiler.is_compiling()


def proto26_forward(m: nn.Module, x: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """YOLO26's prototypes as the trace sees them: with the semantic-segmentation branch that only training runs
    (its input channels are the fused features', which prune: shrink must cut them there too). Returns
    (prototypes, semantic logits); :func:`raw_head` adds the second to the traced outputs."""
    feat = x[0]
    for i, refine in enumerate(m.feat_refine):
        feat = feat + F.interpolate(refine(x[i + 1]), scale_factor=2 ** (i + 1), mode="nearest")
    protos = super(type(m), m).forward(m.feat_fuse(feat))
    return (protos, m.semseg(feat)) if m.semseg is not None else (protos, None)


def raw_head(head: nn.Module, feats: list[torch.Tensor], prototypes: bool = True) -> torch.Tensor:
    """The head's outputs before decoding (see :class:`YoloRaw`). Traced (torch.fx), also the branches only
    training runs (YOLO26 pose's keypoint spreads, YOLO26 segmentation's semantic logits): their inputs prune
    with the layers that feed them, and the graph only knows what the trace reaches."""
    if type(head).__name__ in DENSE_HEADS:
        return dense_head(head, feats)
    stacks = (2, 3, 4) if hasattr(head, "cv4") else (2, 3)
    branches, training_only = [], []
    for prefix in ("", "one2one_"):
        convs = [getattr(head, f"{prefix}cv{k}", None) for k in stacks]
        if any(c is None for c in convs):  # no one-to-one head, or fusing removed a branch
            continue
        for k, stack in zip(stacks, convs):
            maps = [stack[i](feats[i]) for i in range(head.nl)]
            keypoints = getattr(head, f"{prefix}cv4_kpts", None) if k == 4 else None
            if keypoints is not None:  # Pose26: the keypoints are cv4_kpts(cv4(x)), their spread cv4_sigma(cv4(x))
                spread = getattr(head, f"{prefix}cv4_sigma", None)
                if spread is not None and symbolic_tracing():
                    training_only.append(torch.cat([spread[i](f).flatten(2) for i, f in enumerate(maps)], 2))
                maps = [keypoints[i](f) for i, f in enumerate(maps)]
            branches.append(torch.cat([f.flatten(2) for f in maps], 2))
    out = torch.cat(branches + training_only, 1)
    if hasattr(head, "proto") and prototypes:
        protos = head.proto(feats if hasattr(head.proto, "feat_refine") else feats[0])  # Proto26 reads every scale
        if isinstance(protos, tuple):  # traced by proto26_forward
            protos, semantic = protos
            training_only = [semantic.flatten(1)] if semantic is not None else []
        else:
            training_only = []
        out = torch.cat([out.flatten(1), protos.flatten(1), *training_only], 1)
    return out


def dense_head(head: nn.Module, feats: list[torch.Tensor]) -> torch.Tensor:
    """A dense head's map before decoding: Depth's log-depth at a quarter of the input side (Ultralytics takes its
    exponent, calibrates it and resizes it), SemanticSegment's class logits at an eighth (Ultralytics resizes
    them). Traced, SemanticSegment's training-only auxiliary logits (on P4) are added, flattened, so that their
    inputs prune with the layers that feed them."""
    if type(head).__name__ == "Depth":
        maps = [head.proj[i](feats[i]) for i in range(head.nl)]
        out = maps[-1]
        for i in range(head.nl - 2, -1, -1):
            out = head.refine[i](F.interpolate(out, scale_factor=2, mode="bilinear", align_corners=True) + maps[i])
        return head.head(out).clamp(-4.0, 5.0)
    logits = head.classifier(feats[0])
    if head.aux_head is not None and symbolic_tracing():
        return torch.cat([logits.flatten(1), head.aux_head(feats[1]).flatten(1)], 1)
    return logits
