"""Recurrent layers (``nn.LSTM``, ``nn.GRU``, ``nn.RNN``): their input features prune, their hidden state does not.

A recurrent layer reads its input features through its first layer's input-to-hidden weights, one matrix per
direction: removing a feature drops that column of each (``RNN_IN``), as a linear layer's input. The hidden
state's width is the recurrence's own (the hidden-to-hidden weights are square, four gates of an LSTM share
it): the outputs and the hidden and cell states keep their width.
"""

from __future__ import annotations

import torch
from torch.utils._pytree import tree_leaves

from edgeprune.graph.groups import RNN_IN


def recurrent(ctx, node, args, kwargs, ids, ids_kw, out):
    module = ctx.module(node)
    reps = ctx.consumer_reps(ids[0], -1, module.input_size, node.target)
    ctx.attach(reps, RNN_IN, node.target)
    reason = f"{ctx.where(node)}: {type(module).__name__}'s hidden state keeps its width"
    for state in tree_leaves((ids[1:], ids_kw)):  # a given initial state (h0, or LSTM's (h0, c0))
        if isinstance(state, torch.Tensor):
            ctx.cu.freeze(state, reason)
    return ctx.frozen_ids(out, reason)
