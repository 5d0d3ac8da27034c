"""How a layer of your own moves channels, declared once so the graph keeps it whole instead of stopping at it.

``register_layer(MyLayer, kind)``, before the model is traced (at import of the module that defines it):

- ``"elementwise"``: output position p reads input position p of each input (an activation, a gate of two
  inputs of one shape): the inputs' channels join, as for an add.
- ``"channelwise"``: each channel is computed from itself alone along the other dims (a pooling, a per-channel
  filter or norm without per-channel weights); the channel axis is dim 1 and keeps its size.
- ``"mixing"``: outputs mix the channels (an attention, a norm over the channels): the channels it reads and
  writes are frozen.

A layer with weights sized by its channels needs a rule that slices them: declare it ``"mixing"``, or keep its
weighted parts as torch.nn layers inside it (not registered: the graph then traces into it).
"""

from __future__ import annotations

import torch.nn as nn

from edgeprune.errors import InputError

KINDS = ("elementwise", "channelwise", "mixing")
DECLARED: dict[type, str] = {}  # layer class -> kind, read by edgeprune.graph.optable


def register_layer(cls: type, kind: str) -> type:
    """Declare how layers of class ``cls`` (an ``nn.Module`` subclass, and its subclasses) move channels:
    ``"elementwise"``, ``"channelwise"`` or ``"mixing"`` (see the module docstring). Returns ``cls``."""
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise InputError(f"register_layer takes an nn.Module subclass, not {cls!r}")
    if kind not in KINDS:
        raise InputError(f"register_layer({cls.__name__}, {kind!r}): the kind is one of {', '.join(KINDS)}")
    DECLARED[cls] = kind
    from edgeprune.graph import optable

    optable.forget_rules()  # a class seen before the declaration was cached without it
    return cls
