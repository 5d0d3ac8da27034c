"""Multiply-accumulates as fvcore counts them, with the recurrent layers it does not count."""

from __future__ import annotations

import math

import torch
import torch.nn as nn

RECURRENT_OPS = ("aten::lstm", "aten::gru", "aten::rnn_tanh", "aten::rnn_relu")  # fvcore counts none of them


def recurrent_macs(inputs: list, outputs: list) -> int:
    """An LSTM, GRU or RNN call's multiply-accumulates, for fvcore: every step of every layer and direction
    multiplies its input and its hidden state by the layer's matrices (gate nonlinearities not counted)."""
    shape = inputs[0].type().sizes()  # (batch, steps, features), (steps, batch, features) or (steps, features)
    steps = math.prod(shape[:-1])
    matrices = [p.type().sizes() for p in inputs[2].node().inputs()]  # weights and biases, every layer
    return steps * sum(rows * cols for rows, cols in (m for m in matrices if len(m) == 2))


def count_macs(model: nn.Module, x: torch.Tensor) -> tuple[int, dict[str, int], dict[str, int]]:
    """fvcore's multiply-accumulate count: total, by operator, and by module path (one trace)."""
    from fvcore.nn import FlopCountAnalysis

    counter = FlopCountAnalysis(model, x).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    counter.set_op_handle(**dict.fromkeys(RECURRENT_OPS, recurrent_macs))
    by_op = {k: int(v) for k, v in counter.by_operator().items()}
    return int(counter.total()), by_op, {k: int(v) for k, v in counter.by_module().items()}
