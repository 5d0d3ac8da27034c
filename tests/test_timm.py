"""timm models by name (timm:<name>): registry entries from timm's pretrained config, local weights files,
Res2Net under non-uniform plans, weight-standardized convs, untraceable models, and the command line."""

from __future__ import annotations

import copy
import json
import random
import sys

import pytest
import timm
import torch
import torch.nn as nn
import torch.nn.functional as F
from click.testing import CliRunner
from conftest import model_and_graph
from safetensors.torch import save_file

from edgeprune.cli import main
from edgeprune.errors import InputError, MissingError, MissingExtraError
from edgeprune.graph import build_graph
from edgeprune.graph.fxtrace import trace_model
from edgeprune.latency.variants import random_plan
from edgeprune.models import UnknownModelError, create_model, get_entry, list_models
from edgeprune.models.timm_models import CHECKED, timm_entry
from edgeprune.prune import Plan, load_pruned, shrink
from edgeprune.prune.oracle import ORACLE_TOLERANCE, liven, oracle_error
from edgeprune.prune.serialize import arch_spec, save_pruned

SMALL = "timm:lcnet_050"


def test_timm_names_resolve_from_the_pretrained_config():
    entry = get_entry("timm:edgenext_xx_small")
    cfg = timm.get_pretrained_cfg("edgenext_xx_small")
    assert entry.family == "timm" and entry.input_size == cfg.input_size == (3, 256, 256)
    assert entry.data_config["mean"] == cfg.mean and entry.data_config["crop_pct"] == cfg.crop_pct
    assert get_entry("timm:vit_tiny_patch16_224").size_kwarg == "img_size"  # fixed input size: built for it
    assert list_models("timm") == sorted(f"timm:{n}" for n in CHECKED)
    model = create_model(SMALL, num_classes=7)
    assert type(model).__name__ == "MobileNetV3" and model.get_classifier().out_features == 7
    with pytest.raises(UnknownModelError, match="Did you mean: timm:mobilenetv3_large_075"):
        get_entry("timm:mobilenetv3_larg")
    # the prefix is recognized before pkg.module:factory, so it never imports timm's module as a factory
    with pytest.raises(UnknownModelError, match="timm has no model 'create_model'"):
        create_model("timm:create_model")


def test_without_timm_installed_the_error_names_the_extra(monkeypatch):
    timm_entry.cache_clear()
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm now raises ImportError
    try:
        with pytest.raises(MissingExtraError, match=r"pip install 'edgeprune\[timm\]'"):
            get_entry("timm:lcnet_050")
    finally:
        timm_entry.cache_clear()


def test_weights_from_local_files(tmp_path, monkeypatch):
    torch.manual_seed(1)
    source = create_model(SMALL).eval()
    state = source.state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "w.safetensors")
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "ckpt.pth.tar")
    x = torch.randn(1, 3, 64, 64)
    for path in (tmp_path / "w.safetensors", tmp_path / "ckpt.pth.tar"):
        loaded = create_model(SMALL, weights=path).eval()
        torch.testing.assert_close(loaded(x), source(x))
    with pytest.raises(InputError, match=r"does not fit MobileNetV3: .*wrong shape: conv_stem.weight \(16, 3, 3, 3\)"):
        torch.save(create_model("timm:mobilenetv3_small_100").state_dict(), tmp_path / "other.pth")
        create_model(SMALL, weights=tmp_path / "other.pth")
    with pytest.raises(MissingError, match="nowhere.safetensors does not exist"):
        create_model(SMALL, weights=tmp_path / "nowhere.safetensors")
    with pytest.raises(InputError, match="not both"):
        create_model(SMALL, pretrained=True, weights=tmp_path / "w.safetensors")
    (tmp_path / "data" / "pretrained" / "timm").mkdir(parents=True)
    monkeypatch.setenv("EDGEPRUNE_DATA", str(tmp_path / "data"))
    with pytest.raises(MissingError, match=r"pretrained/timm/lcnet_050\(.safetensors"):
        create_model(SMALL, pretrained=True)
    (tmp_path / "w.safetensors").rename(tmp_path / "data" / "pretrained" / "timm" / "lcnet_050.safetensors")
    torch.testing.assert_close(create_model(SMALL, pretrained=True).eval()(x), source(x))


def test_res2net_prunes_with_its_split_widths_rewritten(tmp_path):
    """The issue's hole: timm's Res2Net splits by self.width; different removals per part broke the shrunk model."""
    model, graph, size = model_and_graph("timm:res2net50_14w_8s")
    assert {(s.attr, s.index, len(s.positions)) for s in graph.sizes} == {("width", None, 14), ("width", None, 28),
                                                                         ("width", None, 56), ("width", None, 112)}
    assert len(graph.sizes) == 16  # one per Bottle2neck
    plan = random_plan(graph, random.Random(7))
    pruned, changes = shrink(model, graph, plan)
    narrower = 0
    for s in graph.sizes:
        block, original = pruned.get_submodule(s.path), model.get_submodule(s.path)
        assert block.width == changes[s.path]["width"] == block.convs[0].in_channels <= original.width
        narrower += block.width < original.width
    assert narrower >= 8
    x = torch.randn(2, 3, size, size)
    assert oracle_error(model, graph, plan, pruned, x) <= ORACLE_TOLERANCE
    # arch.json records the timm name and the rewritten widths: the reloaded model needs no training code
    save_pruned(pruned, arch_spec(graph.model_name, {}, graph.fingerprint, changes), tmp_path)
    spec = json.loads((tmp_path / "arch.json").read_text())
    assert spec["model"] == "timm:res2net50_14w_8s" and spec["changes"]["layer1.0"]["type"] == "Bottle2neck"
    loaded = load_pruned(tmp_path).eval()
    assert [b.width for b in loaded.layer1] == [b.width for b in pruned.layer1]
    torch.testing.assert_close(loaded(x), pruned.eval()(x))


def std_conv_net() -> nn.Module:
    """Weight-standardized convs (NFNet / BiT style) around a plain conv."""
    from timm.layers import ScaledStdConv2d, StdConv2d

    return nn.Sequential(
        StdConv2d(3, 12, 3, padding=1), nn.ReLU(), nn.Conv2d(12, 10, 1), nn.ReLU(),
        ScaledStdConv2d(10, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4),
    )  # fmt: skip


def test_weight_standardized_convs_freeze_inputs_and_shrink_their_gain(tmp_path):
    torch.manual_seed(0)
    model = liven(std_conv_net(), 16)
    with torch.no_grad():
        model[4].gain.uniform_(0.5, 1.5)
    graph = build_graph(model, torch.randn(1, 3, 16, 16), model_name="test_timm:std_conv_net")
    frozen = {g.frozen for g in graph.groups if g.frozen}
    assert "4: ScaledStdConv2d standardizes its weight over its input channels" in frozen  # conv 2's outputs
    # Their outputs prune: StdConv2d's into the plain conv, ScaledStdConv2d's (with its gain) into the head.
    first, group = graph.prunable_groups
    assert first.modules() == {"0": {"conv_out"}, "2": {"conv_in"}}
    assert group.modules() == {"4": {"conv_out"}, "4.gain": {"param"}, "8": {"linear_in"}}
    plan = Plan(graph.model_name, graph.fingerprint, {group.id: [0, 3, 5]})
    pruned, changes = shrink(model, graph, plan)
    assert pruned[4].gain.shape == (3, 1, 1, 1) and changes["4.gain"] == {"param_shape": [3, 1, 1, 1]}
    x = torch.randn(2, 3, 16, 16)
    assert oracle_error(model, graph, plan, pruned, x) <= ORACLE_TOLERANCE
    save_pruned(pruned, arch_spec("test_timm:std_conv_net", {}, graph.fingerprint, changes), tmp_path)
    torch.testing.assert_close(load_pruned(tmp_path).eval()(x), pruned(x))


@pytest.mark.parametrize("side", [64, 72])
def test_mobilevit_is_traced_at_its_input_size_and_its_attention_blocks_prune(side):
    """MobileViT resizes a feature map its patches do not tile (``if new_h != H or new_w != W``): at 72 px the
    first attention block's map (9 px) needs it, at 64 px (8 px) it does not; the trace follows the model."""
    model = liven(timm.create_model("mobilevit_xxs").eval(), side)
    x = torch.randn(1, 3, side, side)
    resized = any(n.target is F.interpolate for n in trace_model(model, example=x).nodes)
    assert resized == (side == 72)
    graph = build_graph(model, x, model_name="timm:mobilevit_xxs")
    assert any(m.path.startswith("stages.2.1.") for g in graph.prunable_groups for u in g.units for m in u.members)
    plan = Plan(graph.model_name, graph.fingerprint, {g.id: g.prunable_units[: len(g.prunable_units) // 2]
                                                      for g in graph.prunable_groups})  # fmt: skip
    pruned, _ = shrink(model, graph, plan)
    assert oracle_error(model, graph, plan, pruned, torch.randn(2, 3, side, side)) <= ORACLE_TOLERANCE


def test_cli_prune_export_graph_validate_on_a_timm_model(tmp_path):
    runner = CliRunner()
    out = runner.invoke(main, ["models", "--family", "timm", "--json"])
    listed = {r["name"]: r for r in json.loads(out.output)}
    assert set(listed) == {f"timm:{n}" for n in CHECKED} and listed[SMALL]["input"] == [3, 224, 224]
    out = runner.invoke(main, ["graph", SMALL, "--input-size", "64", "--json"])
    assert out.exit_code == 0, out.output
    graph = json.loads(out.output)
    assert graph["model"] == SMALL and sum(g["prunable"] for g in graph["groups"]) >= 15
    out = runner.invoke(main, ["prune", SMALL, "--ratio", "0.3", "--out", str(tmp_path / "p"), "--json"])
    assert out.exit_code == 0, out.output
    spec = json.loads((tmp_path / "p" / "model" / "arch.json").read_text())
    assert spec["model"] == SMALL and spec["model_kwargs"] == {}
    pruned = load_pruned(tmp_path / "p" / "model")
    assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in create_model(SMALL).parameters())
    out = runner.invoke(main, ["export", str(tmp_path / "p" / "model"), "--out", str(tmp_path / "m.onnx"), "--json"])
    assert out.exit_code == 0, out.output
    from edgeprune.export import check_onnx

    assert check_onnx(pruned.eval(), tmp_path / "m.onnx", torch.randn(2, 3, 224, 224)) <= 1e-4
    from edgeprune.targets import target_from_dict
    from edgeprune.validation import resolve_model, validate

    fast = {"backend": "onnxruntime", "threads": 1, "warmup": 1, "repeats": 3, "rounds": 1}
    report = validate(resolve_model(SMALL), resolve_model(str(tmp_path / "p" / "model")),
                      target_from_dict("t", fast), tmp_path / "v")  # fmt: skip
    assert report["derived"]["macs_speedup"] > 1.1 and report["original"]["model"] == SMALL


def test_reparameterizable_models_are_built_as_deployed_and_load_either_forms_weights(tmp_path):
    """RepVGG's training form adds a 1x1 and an identity branch to every 3x3 conv: exported as is, those run as
    extra layers, and the identity ties every layer of a stage into one residual stream that plans keep whole."""
    name = "timm:repvgg_a0"
    torch.manual_seed(0)
    training = liven(create_model(name, reparameterize=False), 64)
    assert any(type(m).__name__ == "RepVggBlock" and m.conv_1x1 is not None for m in training.modules())
    save_file({k: v.contiguous() for k, v in training.state_dict().items()}, tmp_path / "train.safetensors")
    deployed = create_model(name, weights=tmp_path / "train.safetensors").eval()
    convs = [m for m in deployed.modules() if isinstance(m, nn.Conv2d)]
    assert all(m.kernel_size == (3, 3) for m in convs) and len(convs) == 22  # one conv a block, no branch left
    assert not any(isinstance(m, nn.BatchNorm2d) for m in deployed.modules())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(deployed(x), training(x), rtol=1e-4, atol=1e-4)
    # a file saved from the deploy form (what a training run or a pruned model's source holds) loads too
    save_file({k: v.contiguous() for k, v in deployed.state_dict().items()}, tmp_path / "deploy.safetensors")
    with torch.no_grad():
        torch.testing.assert_close(create_model(name, weights=tmp_path / "deploy.safetensors").eval()(x), deployed(x))
    # in the deploy form no group is a residual stream: every layer can be narrowed
    graph = build_graph(deployed, x[:1], model_name=name)
    assert graph.prunable_groups and not any(g.shared for g in graph.prunable_groups)
    kept = {"reparameterize": False}
    train_graph = build_graph(training, x[:1], model_name=name, model_kwargs=kept)
    assert any(g.shared for g in train_graph.prunable_groups)
    # the training form, pruned, reloads as the training form: arch.json keeps the keyword
    pruned, changes = shrink(training, train_graph, random_plan(train_graph, random.Random(3)))
    save_pruned(pruned, arch_spec(name, train_graph.model_kwargs, train_graph.fingerprint, changes), tmp_path / "p")
    loaded = load_pruned(tmp_path / "p").eval()
    assert json.loads((tmp_path / "p" / "arch.json").read_text())["model_kwargs"] == kept
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), pruned.eval()(x))
    # a file that fits neither form: the training form's mismatch, the one a timm checkpoint's owner can read
    with pytest.raises(InputError, match=r"does not fit ByobNet: wrong shape: stem.conv_kxk.conv.weight"):
        torch.save(create_model("timm:repvgg_a1", reparameterize=False).state_dict(), tmp_path / "other.pth")
        create_model(name, weights=tmp_path / "other.pth")


@pytest.mark.parametrize("name", ["timm:efficientvim_m1", "timm:repvit_m0_9"])
def test_models_that_fuse_only_in_eval_mode_build_fused_and_stay_in_train_mode(name):
    """EfficientViM's blocks assert eval mode when fused; a model is built in train mode, as any nn.Module."""
    torch.manual_seed(0)
    training = create_model(name, reparameterize=False)
    deployed = create_model(name)
    assert deployed.training
    deployed.load_state_dict(get_entry(name).deploy_form(copy.deepcopy(training)).state_dict())
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(deployed) < count(create_model(name, reparameterize=False))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        y = training.eval()(x)
        assert ((deployed.eval()(x) - y).norm() / y.norm()).item() < 1e-4


def test_cli_plans_repvgg_to_half_its_macs_and_the_saved_model_reloads_in_the_deploy_form(tmp_path):
    out = CliRunner().invoke(main, ["prune", "timm:repvgg_a0", "--target", "cpu-ort", "--macs", "0.5x",
                                    "--out", str(tmp_path / "p"), "--json"])  # fmt: skip
    assert out.exit_code == 0, out.output
    result = json.loads((tmp_path / "p" / "plan_result.json").read_text())
    assert 0.45 <= result["ratio"]["macs"] <= 0.5
    pruned = load_pruned(tmp_path / "p" / "model").eval()
    assert not any(isinstance(m, nn.BatchNorm2d) for m in pruned.modules())
    with torch.no_grad():
        assert pruned(torch.randn(1, 3, 64, 64)).shape == (1, 1000)


def test_training_a_fused_model_from_random_weights_is_refused_with_what_to_start_from(tmp_path):
    """Fused from random weights, MobileOne's and RepVGG's deploy form has no norms: its loss went to 1e14 and
    NaN in the first steps. A model with nothing to fuse, or one given weights, trains as before."""
    from edgeprune.train.sources import check_trainable

    out = CliRunner().invoke(main, ["train", "timm:mobileone_s0", "--data", "synthetic", "--epochs", "1",
                                    "--max-steps", "1", "--out", str(tmp_path / "t")])  # fmt: skip
    assert out.exit_code != 0 and "diverges" in out.output and "reparameterize=False" in out.output
    assert not (tmp_path / "t" / "model").exists()
    check_trainable(SMALL, False)  # lcnet: nothing to fuse
    check_trainable("timm:mobileone_s0", str(tmp_path / "w.safetensors"))  # trained weights given
