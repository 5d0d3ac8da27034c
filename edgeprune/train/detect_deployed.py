"""A detector as deployed, scored like the torch model: the exported artifact (ONNX, quantized ONNX, OpenVINO,
.pte) computes the head's raw outputs in its runtime (:class:`~edgeprune.models.ultralytics_models.YoloRaw`'s
layout), and the model's own Ultralytics head decodes them into the boxes, scores (and mask coefficients and
prototypes, keypoints or angles) its validator reads. Only the network runs in the runtime; the decoding and
NMS stay in torch, as they do in an exported model's usual deployment.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
import torch.nn as nn

from edgeprune.errors import InputError


def _widths(head: nn.Module) -> list[int]:
    """Values per anchor of each of the head's stacks in one branch, in the order of its ``one2many`` keys (box
    distributions, class logits, then Segment's mask coefficients, Pose's keypoints or OBB's angle logits)."""
    extra = [getattr(head, n) for n in ("nm", "nk", "ne") if hasattr(head, n)]  # Segment, Pose, OBB
    return [4 * head.reg_max, head.nc, *extra[:1]]


def _replayed(part: torch.Tensor, sizes: list[tuple[int, int]]) -> list:
    """One stack's raw outputs (batch, values, anchors) as per-scale "modules" answering (batch, values, h, w):
    what the head's own ``forward_head`` calls its convs for."""
    b, c, _ = part.shape
    maps = part.split([h * w for h, w in sizes], 2)
    return [lambda _x, m=m, h=h, w=w: m.reshape(b, c, h, w) for m, (h, w) in zip(maps, sizes)]


def decode_raw(head: nn.Module, raw: torch.Tensor, hw: tuple[int, int]):
    """What ``head`` (an Ultralytics Detect, Segment, Pose or OBB head) answers in eval mode, from the raw
    outputs ``raw`` of an input of spatial size ``hw``: ``(decoded predictions, {})``, for Segment
    ``((..., prototypes), {})``. The head's own ``forward_head`` is run on the raw maps in place of its
    convolutions, so each head's transforms (OBB's angle, keypoint decoding) are its own."""
    widths = _widths(head)
    per_anchor = sum(widths)
    sizes = [(math.ceil(hw[0] / int(s)), math.ceil(hw[1] / int(s))) for s in head.stride.tolist()]
    anchors = sum(h * w for h, w in sizes)
    branches = 2 if getattr(head, "one2one_cv2", None) is not None else 1
    b = raw.shape[0]
    if per_anchor * branches * anchors > raw[0].numel():
        raise InputError(f"the deployed model's output ({list(raw.shape)}) does not hold {branches} head branch(es) "
                         f"of {per_anchor} values for {anchors} anchors: not this detector's raw outputs")  # fmt: skip
    heads = raw.reshape(b, -1)[:, : per_anchor * branches * anchors].reshape(b, per_anchor * branches, anchors)
    branch = 1 if branches == 2 and getattr(head, "end2end", False) else 0
    parts = heads[:, branch * per_anchor : (branch + 1) * per_anchor].split(widths, 1)
    keys = list(head.one2many)
    stacks = {key: _replayed(part, sizes) for key, part in zip(keys, parts)}
    for key in keys[len(parts) :]:  # YOLO26 pose: kpts_head(pose_head(x)), replayed whole; the spread is training's
        stacks[key] = [lambda f: f] * len(sizes) if key == "kpts_head" else None
    feats = [raw.new_empty(b, 1, h, w) for h, w in sizes]  # only their shapes are read
    y = head._inference(head.forward_head(feats, **stacks))
    if getattr(head, "end2end", False):
        y = head.postprocess(y.permute(0, 2, 1))
    if not hasattr(head, "proto"):
        return y, {}
    ph, pw = 2 * sizes[0][0], 2 * sizes[0][1]  # the prototypes: twice the first scale's side
    proto = raw.reshape(b, -1)[:, per_anchor * branches * anchors :]
    if proto.shape[1] != head.nm * ph * pw:
        raise InputError(f"the deployed segmenter's output holds {proto.shape[1]} prototype values, expected "
                         f"{head.nm} x {ph} x {pw}: export it with its prototypes")  # fmt: skip
    return (y, proto.reshape(b, head.nm, ph, pw)), {}


def deployed_detector(net: nn.Module, raw: Callable[[torch.Tensor], torch.Tensor]) -> nn.Module:
    """A copy of the Ultralytics ``net`` (a ``DetectionModel``) whose forward computes the raw outputs with
    ``raw`` (the deployed artifact) and decodes them with ``net``'s head: Ultralytics' validator scores it as it
    scores ``net``."""
    deployed = copy.deepcopy(net).eval()
    head = deployed.model[-1]

    def forward(x: torch.Tensor, *args, **kwargs):  # the validator's keywords (augment, ...) do not apply
        with torch.no_grad():
            return decode_raw(head, raw(x).to(x.dtype), tuple(x.shape[-2:]))

    deployed.forward = forward  # a plain function: deep copies (the validator makes one) share it
    return deployed
