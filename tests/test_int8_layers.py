"""int8_layers = "measured": which layers an onnxruntime int8 model leaves in fp32, chosen by timing trials."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner
from tiny_nets import mobile_net, plain_cnn

from edgeprune.backends import int8_layers as il
from edgeprune.backends import prepare_runner
from edgeprune.backends.base import BackendError
from edgeprune.backends.int8_layers import EVERYTHING, Int8Layers, layer_groups, search_fp32_groups
from edgeprune.backends.quantize import is_quantized
from edgeprune.cli import main
from edgeprune.export import export_onnx
from edgeprune.report import markdown
from edgeprune.targets import TargetError, target_from_dict
from edgeprune.timing import Ratio
from edgeprune.validation import resolve_model, validate

FAST = {"backend": "onnxruntime", "precision": "int8", "threads": 1, "warmup": 1, "repeats": 2, "rounds": 3}


@pytest.fixture(scope="module")
def mobile_onnx(tmp_path_factory):
    path = tmp_path_factory.mktemp("il") / "model.onnx"
    export_onnx(mobile_net(), torch.randn(1, 3, 32, 32), path)
    return path


def test_layer_groups_name_parts_kinds_and_everything(mobile_onnx):
    groups = layer_groups(mobile_onnx)
    convs = [n.name for n in onnx.load(str(mobile_onnx)).graph.node if n.op_type == "Conv"]
    assert len(groups["Conv 3x3 dense"]) == 1 and len(groups["Conv 3x3 depthwise"]) == 2
    assert len(groups["Conv 1x1 dense"]) == 2
    assert set(convs) <= set(groups[EVERYTHING])
    parts = [g for g in groups if g.startswith("part ")]
    assert parts == [f"part {i} of 4" for i in range(1, 5)]
    # the parts cut the graph's order into contiguous runs that hold every node once
    assert [n for p in parts for n in groups[p]] == groups[EVERYTHING]


def _compare_by_cost(groups: dict[str, list[str]], saves: dict[str, float], everything: float):
    """A fake timer: leaving a node in fp32 saves ``saves[node]`` of the time (negative: costs); the fp32 model
    takes ``everything`` of the fully quantized one's time. The interval is the ratio +- 0.02."""

    def cost(fp32: list[str]) -> float:
        if EVERYTHING in fp32:
            return everything
        return 1 - sum(saves.get(n, 0.0) for n in Int8Layers(groups, fp32).fp32_nodes)

    def compare(now: list[str], trial: list[str]) -> Ratio:
        r = cost(trial) / cost(now)
        return Ratio(r, r - 0.02, r + 0.02, 3)

    return compare


def test_the_search_keeps_a_group_only_when_its_whole_interval_is_faster():
    groups = {"part 1 of 2": ["a", "b"], "part 2 of 2": ["c", "d"], "Conv 3x3 depthwise": ["b", "d"],
              "Mul": ["e"], EVERYTHING: ["a", "b", "c", "d", "e"]}  # fmt: skip
    # part 1 saves 20 %; d alone saves 3 %, but c costs 4 %; e saves 1 %: inside the interval, not kept
    result = search_fp32_groups(groups, _compare_by_cost(groups, {"a": 0.1, "b": 0.1, "c": -0.04, "d": 0.03,
                                                                  "e": 0.01}, everything=0.9))  # fmt: skip
    assert result.fp32_groups == ["part 1 of 2", "Conv 3x3 depthwise"]
    assert result.fp32_nodes == ["a", "b", "d"]  # once each, in graph order
    tried = [t["fp32"] for t in result.trials]
    assert tried[0] == ["part 1 of 2"] and tried[-2] == [EVERYTHING]
    assert tried[-1] == result.fp32_groups and result.trials[-1]["check"]  # the choice against all-int8
    assert [t["kept"] for t in result.trials] == [True, False, True, False, False, True]
    assert all(t["kept"] == (t["ratio"]["high"] < 1) for t in result.trials)


def test_a_trial_the_backend_refuses_is_recorded_with_its_reason_and_the_search_goes_on():
    groups = {"part 1 of 2": ["a"], "part 2 of 2": ["b"], "Conv 1x1 dense": ["a"], EVERYTHING: ["a", "b"]}
    timed = _compare_by_cost(groups, {"a": 0.1, "b": 0.1}, everything=0.9)

    def compare(now: list[str], trial: list[str]) -> Ratio:
        if trial == ["part 1 of 2", "part 2 of 2"]:  # as XNNPACK refuses a model with no int8 convolution left
            raise BackendError("XNNPACK runs no convolution or linear layer with int8 weights")
        return timed(now, trial)

    result = search_fp32_groups(groups, compare)
    refused = result.trials[1]
    assert refused == {"fp32": ["part 1 of 2", "part 2 of 2"], "ratio": None, "kept": False,
                       "not_built": "XNNPACK runs no convolution or linear layer with int8 weights"}  # fmt: skip
    assert [t["fp32"] for t in result.trials] == [["part 1 of 2"], refused["fp32"], [EVERYTHING], ["part 1 of 2"]]
    assert result.fp32_groups == ["part 1 of 2"] and result.trials[-1]["check"]


def test_the_search_ends_with_the_fp32_model_when_that_is_fastest():
    groups = {"part 1 of 2": ["a"], "part 2 of 2": ["b"], "Conv 1x1 dense": ["a", "b"], EVERYTHING: ["a", "b", "c"]}
    result = search_fp32_groups(groups, _compare_by_cost(groups, {"a": -0.05, "b": -0.05}, everything=0.6))
    assert result.fp32_groups == [EVERYTHING] and result.fp32_nodes == ["a", "b", "c"] and result.all_fp32
    assert Int8Layers(groups, ["part 1 of 2", "part 2 of 2"]).all_fp32 is False  # c is in neither part
    covered = Int8Layers({**groups, "part 2 of 2": ["b", "c"]}, ["part 1 of 2", "part 2 of 2"])
    assert covered.all_fp32  # parts that add up to every node: the fp32 model runs, in trials as when shipped
    target = target_from_dict("fast-int8", {**FAST, "int8_layers": "measured"})
    assert covered.runtime_target(target) == target.as_fp32() and target.as_fp32().int8_layers == "all"
    assert Int8Layers(groups, ["part 1 of 2"]).runtime_target(target) is target
    assert result.to_dict()["fp32_nodes"] == result.to_dict()["nodes"] == 3


def test_a_choice_not_faster_as_a_whole_than_every_layer_in_int8_is_dropped():
    groups = {"part 1 of 2": ["a"], "part 2 of 2": ["b"], EVERYTHING: ["a", "b"]}
    seen = []

    def compare(now: list[str], trial: list[str]) -> Ratio:
        seen.append((now, trial))  # each trial "faster"; the choice, timed against all-int8 anew, is not
        return Ratio(1.02, 1.0, 1.04, 3) if now == [] and len(seen) > 1 else Ratio(0.95, 0.93, 0.97, 3)

    result = search_fp32_groups(groups, compare)
    both = ["part 1 of 2", "part 2 of 2"]
    assert seen == [([], ["part 1 of 2"]), (["part 1 of 2"], both), ([], both)]
    assert result.trials[-1] == {"fp32": both, "ratio": Ratio(1.02, 1.0, 1.04, 3).to_dict(), "kept": False,
                                 "check": True}  # fmt: skip
    assert result.fp32_groups == [] and result.fp32_nodes == [] and not result.all_fp32


def test_the_final_check_goes_through_check_when_given():
    groups = {"part 1 of 2": ["a"], "part 2 of 2": ["b"], EVERYTHING: ["a", "b"]}
    trials, checks = [], []

    def compare(now: list[str], trial: list[str]) -> Ratio:
        trials.append((now, trial))
        return Ratio(0.95, 0.93, 0.97, 3)

    def check(now: list[str], trial: list[str]) -> Ratio:
        checks.append((now, trial))  # choose_fp32_layers' check builds both models anew
        return Ratio(0.98, 0.97, 0.99, 3)

    result = search_fp32_groups(groups, compare, check)
    both = ["part 1 of 2", "part 2 of 2"]
    assert trials == [([], ["part 1 of 2"]), (["part 1 of 2"], both)] and checks == [([], both)]
    assert result.fp32_groups == both and result.trials[-1]["kept"] and result.trials[-1]["check"]


def _float_convs(path) -> set[str]:
    """Convolutions of a QDQ model whose weight is a float initializer (not dequantized from int8)."""
    graph = onnx.load(str(path)).graph
    dequantized = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    return {n.name for n in graph.node if n.op_type == "Conv" and n.input[1] not in dequantized}


def test_keep_fp32_leaves_exactly_those_nodes_in_float(mobile_onnx):
    target = target_from_dict("fast-int8", FAST)
    keep = layer_groups(mobile_onnx)["Conv 3x3 depthwise"]
    runner = prepare_runner(target, mobile_onnx, (1, 3, 32, 32), keep_fp32=keep)
    assert _float_convs(runner.model_path) == set(keep)
    runner = prepare_runner(target, mobile_onnx, (1, 3, 32, 32))
    assert _float_convs(runner.model_path) == set()


def test_keep_fp32_leaves_those_convolutions_in_float_in_openvino(mobile_onnx):
    target = target_from_dict("fast-ov-int8", {**FAST, "backend": "openvino"})
    groups = layer_groups(mobile_onnx)
    keep, stem = groups["Conv 1x1 dense"], groups["Conv 3x3 dense"][0]
    runner = prepare_runner(target, mobile_onnx, (1, 3, 32, 32), keep_fp32=keep)
    by_name: dict[str, set[str]] = {}
    for op in runner.compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        if info["layerType"].astype(str) == "Convolution":
            for name in info["originalLayersNames"].astype(str).split(","):
                by_name.setdefault(name, set()).add(info["runtimePrecision"].astype(str))
    assert all(by_name[n] == {"f32"} for n in keep) and by_name[stem] & {"u8", "i8"}


def test_a_timed_search_records_every_trial_it_ran(mobile_onnx):
    result = il.choose_fp32_layers(target_from_dict("fast-int8", FAST), mobile_onnx, (1, 3, 32, 32))
    assert result.trials and all(t["kept"] == (t["ratio"]["high"] < 1) for t in result.trials)
    assert all(t["ratio"]["low"] <= t["ratio"]["median"] <= t["ratio"]["high"] for t in result.trials)
    assert set(result.fp32_nodes) <= set(result.groups[EVERYTHING])


def test_validate_deploys_the_measured_choice(monkeypatch, tmp_path):
    # the timing is faked: the fp32 model "wins", so the deployed artifact holds no int8 layer at all
    monkeypatch.setattr(il, "choose_fp32_layers",
                        lambda t, path, shape: Int8Layers(layer_groups(path), [EVERYTHING]))  # fmt: skip
    target = target_from_dict("fast-int8", {**FAST, "int8_layers": "measured"})
    model = resolve_model("cifar_resnet20")
    report = validate(model, resolve_model("cifar_resnet20"), target, tmp_path / "v")
    for side in (report["original"], report["pruned"]):
        assert side["int8_layers"]["fp32_groups"] == [EVERYTHING]
        assert side["int8_layers"]["fp32_nodes"] == side["int8_layers"]["nodes"] > 20
        # every weight stays fp32: the deployed file is as large as the export (quantized: under 0.6 of it)
        assert side["memory"]["deployed_file_bytes"] > 0.95 * side["memory"]["model_file_bytes"]
    n = report["original"]["int8_layers"]["fp32_nodes"]
    assert f"| layers left in fp32 (measured faster here) | {n} of {n} nodes (every layer) |" in markdown(report)


def test_an_openvino_target_whose_fp32_model_won_ships_it_as_ir(monkeypatch, tmp_path):
    monkeypatch.setattr(il, "choose_fp32_layers",
                        lambda t, path, shape: Int8Layers(layer_groups(path), [EVERYTHING]))  # fmt: skip
    target = target_from_dict("fast-ov-int8", {**FAST, "backend": "openvino", "int8_layers": "measured"})
    report = validate(resolve_model("cifar_resnet20"), resolve_model("cifar_resnet20"), target, tmp_path / "v")
    xml = tmp_path / "v" / "deployed.xml"
    assert report["deployed_files"] == [str(xml.with_suffix(".bin")), str(xml)]
    import openvino as ov

    assert {op.get_type_name() for op in ov.Core().read_model(str(xml)).get_ops()} & {"Convolution"}
    assert not {op.get_type_name() for op in ov.Core().read_model(str(xml)).get_ops()} & {"FakeQuantize"}
    assert report["pruned"]["ms_by_layer"]["linear"] > 0  # timed per layer as it ships: in fp32


def test_int8_layers_is_refused_where_it_cannot_apply(tmp_path):
    with pytest.raises(TargetError, match="'measured' is for int8 targets of onnxruntime, openvino, executorch"):
        target_from_dict("t", {"backend": "tensorrt", "device": "cuda", "precision": "int8", "int8_layers": "measured"})
    with pytest.raises(TargetError, match="is for int8 targets"):
        target_from_dict("ov", {"backend": "openvino", "int8_layers": "measured"})
    with pytest.raises(TargetError, match="expected one of"):
        target_from_dict("ort", {**FAST, "int8_layers": "some"})
    r = CliRunner().invoke(main, ["validate", "a", "b", "--target", "cpu-ort", "--int8-layers", "measured",
                                  "--out", "o"])  # fmt: skip
    assert r.exit_code == 2 and "--int8-layers cannot be used with cpu-ort, which is not int8" in r.output
    trt = tmp_path / "trt-int8.toml"
    trt.write_text('backend = "tensorrt"\ndevice = "cuda"\nprecision = "int8"\n')
    r = CliRunner().invoke(main, ["validate", "a", "b", "--target", str(trt), "--int8-layers", "measured",
                                  "--out", "o"])  # fmt: skip
    assert r.exit_code == 2 and "tensorrt quantizes every layer it takes" in r.output


def test_export_writes_what_an_int8_target_runs(tmp_path):
    out = tmp_path / "r20.int8.onnx"
    args = ["export", "cifar_resnet20", "--target", "cpu-ort-int8", "--calibration-data", "synthetic",
            "--calibration-count", "16", "--out", str(out), "--json"]  # fmt: skip
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["calibration"] == {"count": 16, "data": "synthetic"}
    assert is_quantized(out) and _float_convs(out) == set()
    import onnxruntime as ort

    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.run(None, {session.get_inputs()[0].name: np.zeros((2, 3, 32, 32), np.float32)})[0].shape == (2, 10)
    # measured: the export says what it left in fp32, and every trial it timed
    r = CliRunner().invoke(main, [*args[:-3], "--out", str(tmp_path / "m.int8.onnx"), "--int8-layers", "measured",
                                  "--json"])
    assert r.exit_code == 0, r.output
    chosen = json.loads(r.output)["int8_layers"]
    assert chosen["trials"] and chosen["nodes"] > 20 and 0 <= chosen["fp32_nodes"] <= chosen["nodes"]
    # OpenVINO int8: the IR, its weights beside it under the name asked for
    xml = tmp_path / "ov" / "r20.xml"
    r = CliRunner().invoke(main, [*args[:3], "cpu-openvino-int8", *args[4:8], "--out", str(xml)])
    assert r.exit_code == 0, r.output
    assert xml.exists() and xml.with_suffix(".bin").exists() and sorted(p.name for p in xml.parent.iterdir()) == [
        "r20.bin", "r20.xml"]  # fmt: skip


def test_export_for_a_target_refuses_bad_input_and_keeps_what_is_on_disk(tmp_path):
    out = tmp_path / "model.onnx"
    out.write_text("keep me")
    base = ["export", "cifar_resnet20", "--out", str(out)]
    r = CliRunner().invoke(main, [*base, "--target", "cpu-ort-int8"])
    assert r.exit_code == 2 and "give --calibration-data" in r.output
    r = CliRunner().invoke(main, [*base, "--target", "cpu-ort-int8", "--calibration-data", "synthetic",
                                  "--calibration-count", "257"])  # fmt: skip
    assert r.exit_code == 1 and "needs 257 images" in r.output
    r = CliRunner().invoke(main, [*base[:-1], str(tmp_path / "m.xml"), "--target", "cpu-ort-int8",
                                  "--calibration-data", "synthetic", "--calibration-count", "16"])  # fmt: skip
    assert r.exit_code == 1 and "runs a .onnx file: name the output FILE.onnx" in r.output
    r = CliRunner().invoke(main, [*base, "--calibration-data", "synthetic"])
    assert r.exit_code == 2 and "--calibration-data cannot be used without --target" in r.output
    r = CliRunner().invoke(main, [*base, "--target", "cpu-ort", "--int8-layers", "measured"])
    assert r.exit_code == 2 and "which is not int8" in r.output
    assert out.read_text() == "keep me" and sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


@pytest.fixture
def timed_runners(monkeypatch):
    """Every runner the plan timing builds, as (precision, nodes left in float), the choice the faked layer search
    returns (the first quarter of the graph in fp32; a test may set it), and the groups it chose from."""
    from edgeprune.latency import runs

    built, choice, groups = [], ["part 1 of 4"], {}

    def choose(target, path, shape):
        groups.update(layer_groups(path))
        return Int8Layers(dict(groups), choice[:])

    monkeypatch.setattr(il, "choose_fp32_layers", choose)
    real = runs.prepare_runner

    def spy(target, source, shape, calibration=None, keep_fp32=()):
        built.append((target.precision, tuple(keep_fp32)))
        return real(target, source, shape, calibration, keep_fp32)

    monkeypatch.setattr(runs, "prepare_runner", spy)
    return built, choice, groups


def _prune_measured(tmp_path, compare: bool):
    from edgeprune.plan.planner import Budget
    from edgeprune.plan.run import PruneSettings, prune_run

    toml = tmp_path / "fast-int8.toml"
    toml.write_text('backend = "onnxruntime"\nprecision = "int8"\nint8_layers = "measured"\nthreads = 1\n'
                    "warmup = 1\nrepeats = 2\nrounds = 3\n")  # fmt: skip
    settings = PruneSettings(Budget.parse("macs", "0.6x"), compare_plans=compare, measured_rounds=0)
    out = tmp_path / f"plan-{compare}"
    return prune_run("tiny_nets:mobile_net", str(toml), settings, out, input_size=32), out


def test_prune_times_its_plans_with_the_layers_measured_faster_in_fp32_left_in_float(timed_runners, tmp_path):
    built, _, groups = timed_runners
    result, out = _prune_measured(tmp_path, compare=True)
    first_quarter = set(groups["part 1 of 4"])
    assert len(built) >= 6  # three plan shapes, each timed beside the unpruned model
    # the unpruned model and every plan shape run with those nodes in float, as the model will ship
    assert all(precision == "int8" and set(keep) == first_quarter for precision, keep in built)
    recorded = {k: result.int8_layers[k] for k in ("timed", "precision", "fp32_groups", "fp32_nodes", "nodes")}
    assert recorded == {"timed": True, "precision": "int8", "fp32_groups": ["part 1 of 4"],
                        "fp32_nodes": len(first_quarter), "nodes": len(groups[EVERYTHING])}  # fmt: skip
    text = (out / "plan.md").read_text()
    assert f"timed as it ships: {len(first_quarter)} of {result.int8_layers['nodes']} nodes (part 1 of 4) left in " \
           "fp32, measured on the unpruned model (the profile priced every layer in int8)" in text  # fmt: skip
    assert json.loads((out / "plan_result.json").read_text())["int8_layers"]["fp32_groups"] == ["part 1 of 4"]


def test_where_every_layer_ran_faster_in_fp32_the_plans_are_timed_unquantized(timed_runners, tmp_path):
    built, choice, _ = timed_runners
    choice[:] = [EVERYTHING]
    result, out = _prune_measured(tmp_path, compare=True)
    assert built and all(precision == "fp32" and keep == () for precision, keep in built)
    assert result.int8_layers["precision"] == "fp32"
    assert "every layer ran faster in fp32 on the unpruned model, so the plans were timed unquantized" in \
        (out / "plan.md").read_text()  # fmt: skip


def test_a_plan_priced_only_says_the_layers_left_in_fp32_were_not_priced(timed_runners, tmp_path):
    built, _, _ = timed_runners
    result, out = _prune_measured(tmp_path, compare=False)
    assert built == [] and result.int8_layers == {"timed": False}
    text = (out / "plan.md").read_text()
    assert "the profile priced every layer in int8, and no plan was timed on the target" in text


def test_prune_takes_int8_layers_as_validate_and_export_do(timed_runners, tmp_path):
    built, _, groups = timed_runners
    toml = tmp_path / "fast-int8.toml"  # every layer int8 unless the option says otherwise
    toml.write_text('backend = "onnxruntime"\nprecision = "int8"\nthreads = 1\nwarmup = 1\nrepeats = 2\nrounds = 3\n')
    args = ["prune", "tiny_nets:mobile_net", "--input-size", "32", "--macs", "0.6x", "--compare-plans"]
    r = CliRunner().invoke(main, [*args, "--target", str(toml), "--int8-layers", "measured", "--out",
                                  str(tmp_path / "p")])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert built and all(set(keep) == set(groups["part 1 of 4"]) for _, keep in built)
    assert "timed as it ships:" in r.output and "(part 1 of 4) left in fp32, measured on the unpruned model" in r.output
    r = CliRunner().invoke(main, [*args, "--target", "cpu-ort", "--int8-layers", "measured", "--out",
                                  str(tmp_path / "q")])  # fmt: skip
    assert r.exit_code == 2 and "--int8-layers cannot be used with cpu-ort, which is not int8" in r.output
    r = CliRunner().invoke(main, ["prune", "tiny_nets:mobile_net", "--ratio", "0.3", "--int8-layers", "measured",
                                  "--out", str(tmp_path / "s")])  # fmt: skip
    assert r.exit_code == 2 and "--int8-layers" in r.output and not (tmp_path / "s").exists()


@pytest.fixture
def searches(monkeypatch, mobile_onnx):
    """Each fp32-layer search the plan timing runs (faked, and nothing exported: the first quarter of the
    mobile net's graph left in fp32)."""
    from edgeprune.latency import runs as timing

    runs, groups = [], layer_groups(mobile_onnx)

    def choose(target, path, shape):
        runs.append(path)
        return Int8Layers(groups, ["part 1 of 4"])

    monkeypatch.setattr(il, "choose_fp32_layers", choose)
    monkeypatch.setattr(timing, "export_for", lambda target, model, shape, path: path)
    return runs


def test_the_steps_of_a_schedule_search_each_architecture_once(searches):
    from edgeprune.latency.runs import layer_search_kept, timed_as_deployed

    target = target_from_dict("fast-int8", {**FAST, "int8_layers": "measured"})
    shape = (1, 3, 32, 32)
    first = timed_as_deployed(target, mobile_net(), shape)
    timed_as_deployed(target, mobile_net(), shape)
    assert len(searches) == 2  # outside a schedule every call measures the machine as it is now
    with layer_search_kept():
        again = timed_as_deployed(target, mobile_net(), shape)  # other random weights, the same layers
        assert timed_as_deployed(target, mobile_net(), shape)[1] == again[1] == first[1]
        assert len(searches) == 3
        timed_as_deployed(target, plain_cnn().eval(), shape)  # another architecture
        timed_as_deployed(target, mobile_net(), (1, 3, 48, 48))  # another input size
        timed_as_deployed(target_from_dict("fast-int8", {**FAST, "int8_layers": "measured", "threads": 2}),
                          mobile_net(), shape)  # another target  # fmt: skip
        assert len(searches) == 6
    timed_as_deployed(target, mobile_net(), shape)
    assert len(searches) == 7


def test_prune_in_steps_searches_the_unpruned_model_once(searches, monkeypatch, tmp_path):
    from edgeprune.latency.runs import timed_as_deployed
    from edgeprune.plan import run

    target = target_from_dict("fast-int8", {**FAST, "int8_layers": "measured"})

    def step(source, target, settings, out, schedule, **options):  # each step times beside the unpruned model
        timed_as_deployed(target, mobile_net(), (1, 3, 32, 32))
        out.mkdir(parents=True, exist_ok=True)
        (out / "plan_result.json").write_text(json.dumps({"origin": 1.0}))

    monkeypatch.setattr(run, "prune_run", step)
    run.prune_in_steps("tiny_nets:mobile_net", target, None, tmp_path / "out", 3, calibration=object())
    assert len(searches) == 1
