"""Recurrent layers (nn.LSTM, nn.GRU, nn.RNN) after a conv backbone, as in a text recognizer (CRNN): the
backbone's last channels are the recurrent layer's input features and prune with it; its hidden state does not."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn
from conftest import group_of

from edgeprune.graph import build_graph
from edgeprune.graph.groups import CONV_OUT, RNN_IN
from edgeprune.latency.layers import collect_layers, layer_mmacs
from edgeprune.prune import Plan, shrink
from edgeprune.prune.calibrate import measure_channels
from edgeprune.prune.importance import magnitude_scores
from edgeprune.prune.oracle import ORACLE_TOLERANCE, liven, oracle_error
from edgeprune.prune.serialize import apply_arch
from edgeprune.regularize.slices import group_slices
from edgeprune.validation import count_macs

RECURRENT = {
    "lstm": lambda c: nn.LSTM(c, 5, num_layers=2, bidirectional=True, batch_first=True),
    "gru": lambda c: nn.GRU(c, 5, batch_first=False),
    "rnn": lambda c: nn.RNN(c, 5, bidirectional=True, batch_first=True, nonlinearity="relu"),
}


class TextRecognizer(nn.Module):
    """Convs over a line of text, the height pooled away, the columns read in order by a recurrent layer."""

    def __init__(self, kind: str, hidden_state: bool = False) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU())
        self.last = nn.Conv2d(6, 8, 3, padding=1)
        self.rnn = RECURRENT[kind](8)
        self.hidden_state = hidden_state  # pass an initial hidden state of the recurrent layer's own width
        width = self.rnn.hidden_size * (2 if self.rnn.bidirectional else 1)
        self.head = nn.Linear(width, 4)

    def forward(self, x):
        columns = self.last(self.conv(x)).relu().mean(2)  # B, C, W
        seq = columns.permute(0, 2, 1) if self.rnn.batch_first else columns.permute(2, 0, 1)
        if self.hidden_state:
            layers = self.rnn.num_layers * (2 if self.rnn.bidirectional else 1)
            h0 = seq.new_zeros(layers, x.shape[0], self.rnn.hidden_size)
            out, _ = self.rnn(seq, (h0, h0.clone()) if isinstance(self.rnn, nn.LSTM) else h0)
        else:
            out, _ = self.rnn(seq)
        return self.head(out)


def _setup(kind: str, hidden_state: bool = False):
    torch.manual_seed(0)
    model = liven(TextRecognizer(kind, hidden_state).eval(), 8)
    graph = build_graph(model, torch.randn(1, 3, 8, 12), model_name=f"test_recurrent:{kind}")
    return model, graph


@pytest.mark.parametrize("kind", sorted(RECURRENT))
def test_features_read_by_a_recurrent_layer_prune_with_it(kind):
    model, graph = _setup(kind, hidden_state=kind == "gru")
    group, _ = group_of(graph, "last", CONV_OUT)
    assert group.prunable and group.size == 8 and group is group_of(graph, "rnn", RNN_IN)[0]
    plan = Plan(graph.model_name, graph.fingerprint, {group.id: [0, 3, 4, 6]})
    pruned, changes = shrink(model, graph, plan)
    assert pruned.rnn.input_size == 4 and changes["rnn"] == {"type": type(model.rnn).__name__, "input_size": 4}
    assert pruned.rnn.weight_ih_l0.shape[1] == 4 and pruned.rnn.hidden_size == model.rnn.hidden_size
    x = torch.randn(3, 3, 8, 12)
    assert oracle_error(model, graph, plan, pruned, x) <= ORACLE_TOLERANCE
    rebuilt = TextRecognizer(kind, hidden_state=kind == "gru").eval()
    apply_arch(rebuilt, changes)  # what reloading a saved pruned model does before loading its weights
    rebuilt.load_state_dict(pruned.state_dict())
    torch.testing.assert_close(rebuilt(x), pruned(x))


def test_the_hidden_state_and_what_follows_keep_their_width():
    _, graph = _setup("lstm", hidden_state=True)
    head, _ = group_of(graph, "head", "linear_in")
    assert head.frozen is not None and "hidden state" in head.frozen


@pytest.mark.parametrize("kind", ["lstm", "gru"])  # batch first, and the sequence first
def test_a_removed_feature_held_at_its_mean_folds_into_the_gates_biases(kind):
    model, graph = _setup(kind)
    group, _ = group_of(graph, "last", CONV_OUT)
    images = torch.rand(6, 3, 8, 12) * 2  # means away from zero: folding them changes the outputs
    stats = measure_channels(model, graph, images)
    assert stats.means["rnn"].shape == (8,) and bool(stats.means["rnn"].abs().sum() > 0)
    assert stats.scores[group.id].shape == (8,)  # per image, whichever dim of the sequence holds the batch
    plan = Plan(graph.model_name, graph.fingerprint, {group.id: [1, 2, 5, 7]})
    folded, _ = shrink(model, graph, plan, stats.means)
    plain, _ = shrink(model, graph, plan)
    assert oracle_error(model, graph, plan, folded, images, stats.means) <= ORACLE_TOLERANCE
    assert not torch.allclose(folded(images), plain(images))  # the means did change the gates


def test_magnitude_and_regularizer_slices_count_every_directions_input_weights():
    model, graph = _setup("lstm")
    group, _ = group_of(graph, "last", CONV_OUT)
    before = magnitude_scores(model, group)
    lighter = copy.deepcopy(model)
    with torch.no_grad():
        lighter.rnn.weight_ih_l0_reverse[:, 2] = 0  # the backward direction's column of feature 2
    after = magnitude_scores(lighter, group)
    assert after[2] < before[2] and torch.equal(after[[0, 1, 3]], before[[0, 1, 3]])
    (slices,) = [s for s in group_slices(model, graph) if s.group is group]
    names = {b.name for b in slices.blocks if b.side == "in"}
    assert {"rnn.weight_ih_l0", "rnn.weight_ih_l0_reverse"} <= names


@pytest.mark.parametrize("kind", sorted(RECURRENT))
def test_macs_count_the_recurrent_matrices_in_validation_and_in_the_planner(kind):
    model = TextRecognizer(kind).eval()
    x = torch.randn(2, 3, 8, 12)
    _, _, by_module = count_macs(model, x)
    steps = 2 * 12  # images x columns
    matrices = sum(p.numel() for n, p in model.rnn.named_parameters() if n.startswith("weight"))
    assert by_module["rnn"] == steps * matrices
    layers = [la for la in collect_layers(model, tuple(x.shape)) if la.path.split(":")[0] == "rnn"]
    assert sum(layer_mmacs(la, la.cin, la.cout) for la in layers) == pytest.approx(by_module["rnn"] / 1e6)
    reading = [la for la in layers if la.path == "rnn"]  # the layers whose input width the plan shrinks
    assert len(reading) == (2 if model.rnn.bidirectional else 1) and all(la.cin == 8 for la in reading)


def test_a_macs_budget_counts_what_the_recurrent_layer_reads():
    from edgeprune.latency.calibration import model_mmacs
    from edgeprune.plan.budget import Budget
    from edgeprune.plan.planner import plan_pruning

    model, graph = _setup("lstm")
    layers = collect_layers(model, (1, 3, 8, 12))
    result = plan_pruning(model, graph, layers, Budget.parse("macs", "0.4x"), ranked_by="macs")
    pruned, _ = shrink(model, graph, result.plan)
    assert pruned.rnn.input_size < 8
    # the planner's count of the plan is the pruned model's, its recurrent layer's narrower input included
    assert result.pruned["macs"] == pytest.approx(model_mmacs(collect_layers(pruned, (1, 3, 8, 12))))
    assert result.pruned["macs"] <= 0.4 * result.dense["macs"]


def test_a_pruned_recurrent_model_exports_and_runs_in_onnxruntime(tmp_path):
    from edgeprune.export import check_onnx, export_onnx

    model, graph = _setup("lstm")
    group, _ = group_of(graph, "last", CONV_OUT)
    pruned, _ = shrink(model, graph, Plan(graph.model_name, graph.fingerprint, {group.id: [0, 3, 4, 6]}))
    x = torch.randn(1, 3, 8, 12)
    export_onnx(pruned, x, tmp_path / "pruned.onnx")
    assert check_onnx(pruned, tmp_path / "pruned.onnx", x) < 1e-4


def test_oicsr_reaches_the_recurrent_layers_input_columns():
    from edgeprune.regularize import SparsityHook

    model, graph = _setup("lstm")
    hook = SparsityHook.from_graph(model, graph, "oicsr", lam=0.1)  # out-channel and in-channel in one group
    model.zero_grad()
    hook.after_backward()  # the penalty's gradient alone: no task loss
    group, _ = group_of(graph, "last", CONV_OUT)
    for name in ("weight_ih_l0", "weight_ih_l0_reverse"):
        grad = getattr(model.rnn, name).grad
        assert grad is not None and bool(grad.abs().sum() > 0), name  # the columns of the features it reads
    assert set(hook.importance()) >= {group.id}
