"""cpu-ort-int8: static QDQ quantization with per-channel weights, calibrated on real CIFAR images."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

import edgeprune.backends.onnxruntime as ort_backend
from edgeprune.backends import CalibrationError, QuantizationError, prepare_runner, time_runners
from edgeprune.backends.onnxruntime import profile_events
from edgeprune.backends.quantize import calibration_batches, quantize_onnx, random_samples
from edgeprune.export import export_onnx
from edgeprune.latency.layers import Geometry
from edgeprune.latency.micro import input_for, micro_model
from edgeprune.models import create_model
from edgeprune.targets import TargetError, load_target, target_from_dict
from edgeprune.train.calibration import calibration_images
from edgeprune.train.data import load_lossless_subset

SHAPE = (1, 3, 32, 32)
COUNT = 64


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """cifar_resnet20 with its trained weights, exported; its calibration images; 64 lossless test images."""
    model = create_model("cifar_resnet20", pretrained=True).eval()
    path = tmp_path_factory.mktemp("int8") / "r20.onnx"
    export_onnx(model, torch.randn(*SHAPE), path)
    images = calibration_images("cifar10-lossless", COUNT, model, "cifar_resnet20")
    return path, images, load_lossless_subset("test")[0][:64].numpy()


@pytest.fixture(scope="module")
def target():
    return replace(load_target("cpu-ort-int8"), calibration_count=COUNT, warmup=1, repeats=2, rounds=3)


def ops(path) -> list[str]:
    return [n.op_type for n in onnx.load(str(path)).graph.node]


def test_int8_runner_runs_a_per_channel_qdq_model_that_agrees_with_fp32(exported, target):
    path, images, test = exported
    runner = prepare_runner(target, path, SHAPE, images)
    fp32 = prepare_runner(load_target("cpu-ort"), path, SHAPE)
    assert runner.model_path == path.with_name("r20.int8.onnx") and runner.calibration == "images"
    assert runner.session.get_providers() == ["CPUExecutionProvider"]
    model = onnx.load(str(runner.model_path))
    kinds = ops(runner.model_path)
    assert kinds.count("Conv") == 19 and kinds.count("QuantizeLinear") > 19 and "DequantizeLinear" in kinds
    inits = {i.name: i for i in model.graph.initializer}
    weight_dq = [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits
                 and numpy_helper.to_array(inits[n.input[0]]).dtype == np.int8]  # fmt: skip
    assert len(weight_dq) >= 20  # 19 convs + the classifier
    conv_w = next(n for n in weight_dq if numpy_helper.to_array(inits[n.input[0]]).ndim == 4)
    scales = numpy_helper.to_array(inits[conv_w.input[1]])
    assert scales.shape == (numpy_helper.to_array(inits[conv_w.input[0]]).shape[0],) and len(set(scales)) > 1
    q, f = runner.run(test), fp32.run(test)
    assert (q.argmax(1) == f.argmax(1)).mean() >= 0.9
    assert 0 < np.abs(q - f).max() < np.abs(f).max()  # quantized, not an fp32 copy, and still close


def test_random_calibration_quantizes_to_the_same_graph(exported, tmp_path, monkeypatch):
    """Timing-only runs calibrate on random inputs: only scales and zero points differ, never the nodes."""
    path, images, _ = exported
    real = quantize_onnx(path, tmp_path / "real.onnx", images)
    rand = quantize_onnx(path, tmp_path / "random.onnx", random_samples(SHAPE))
    assert ops(real) == ops(rand)
    runner = prepare_runner(replace(load_target("cpu-ort-int8"), calibration_count=COUNT), path, SHAPE)
    assert runner.calibration == "random" and ops(runner.model_path) == ops(real)
    # a histogram method is for real images: random ones are calibrated by minmax, which is faster
    entropy = replace(load_target("cpu-ort-int8"), calibration_count=COUNT, calibration_method="entropy")
    runner = prepare_runner(entropy, path, SHAPE)
    assert activation_scales(runner.model_path) == activation_scales(rand)
    methods = []  # on random inputs entropy's scales can equal minmax's: check the method the quantizer got
    monkeypatch.setattr(ort_backend, "quantize_onnx", lambda *a: methods.append(a[3]) or quantize_onnx(*a))
    prepare_runner(entropy, path, SHAPE)
    prepare_runner(entropy, path, SHAPE, images)
    assert methods == ["minmax", "entropy"]


@pytest.mark.parametrize(("side", "batch"), [(32, 32), (224, 10), (640, 1)])
def test_calibration_batches_hold_a_bounded_number_of_pixels(side, batch):
    """A dynamic-batch model calibrates in batches whose activations fit in memory; a fixed batch is kept."""
    samples = np.zeros((33, 3, side, side), np.float32)
    sizes = [len(b) for b in calibration_batches(samples, 0)]
    assert sum(sizes) == 33 and max(sizes) == batch
    assert [len(b) for b in calibration_batches(samples, 4)] == [4] * 8


def test_too_few_or_misshaped_calibration_images_are_refused(exported, target):
    path, images, _ = exported
    with pytest.raises(CalibrationError, match=f"needs {COUNT} images but the calibration set given has 10"):
        prepare_runner(target, path, SHAPE, images[:10])
    with pytest.raises(CalibrationError, match=r"needs 300 images but synthetic's train split has 256"):
        calibration_images("synthetic", 300, None, "cifar_resnet20")
    with pytest.raises(CalibrationError, match=r"do not fit the model's input \[1, 3, 32, 32\]"):
        prepare_runner(target, path, SHAPE, images[:, :, :16, :16])


def activation_scales(path) -> dict[str, float]:
    """The scale each activation (by tensor name) is quantized with."""
    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return {n.input[0]: float(inits[n.input[1]]) for n in model.graph.node if n.op_type == "QuantizeLinear"
            and n.input[0] not in inits}  # fmt: skip


def input_scale(path) -> float:
    return activation_scales(path)[onnx.load(str(path)).graph.input[0].name]


@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_histogram_calibration_sets_other_ranges_on_the_same_graph(exported, tmp_path, method):
    """One stray pixel sets minmax's input range and percentile clips it; entropy chooses its own ranges. The
    quantized graph is the same whatever the method (so is the latency)."""
    path, images, _ = exported
    stray = images.copy()
    stray[0, 0, 0, 0] = 40.0
    wide = quantize_onnx(path, tmp_path / "minmax.onnx", stray)
    clipped = quantize_onnx(path, tmp_path / f"{method}.onnx", stray, method)
    assert input_scale(wide) > 40 / 255 * 0.99
    if method == "percentile":
        assert input_scale(clipped) < input_scale(wide) / 3
    a, b = activation_scales(wide), activation_scales(clipped)
    assert a.keys() == b.keys() and sum(abs(a[k] - b[k]) > 0.05 * a[k] for k in a) >= 3  # minmax: none
    assert ops(clipped) == ops(wide)
    target = replace(load_target("cpu-ort-int8"), calibration_count=COUNT, calibration_method=method)
    runner = prepare_runner(target, path, SHAPE, stray)
    assert activation_scales(runner.model_path) == b  # the target's method reached the artifact


def test_failed_quantization_leaves_the_previous_artifact(exported, tmp_path):
    path, images, _ = exported
    out = quantize_onnx(path, tmp_path / "model.int8.onnx", images)
    before = out.read_bytes()
    with pytest.raises(QuantizationError, match="could not quantize"):
        quantize_onnx(path, out, np.zeros((4, 3, 16, 16), np.float32))  # the model's input is 32x32
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.int8.onnx"]  # no temp file left behind


def test_int8_runners_time_through_the_shared_harness(exported, target):
    path, images, _ = exported
    runners = {"int8": prepare_runner(target, path, SHAPE, images),
               "fp32": prepare_runner(load_target("cpu-ort"), path, SHAPE)}  # fmt: skip
    timed = time_runners(runners, np.zeros(SHAPE, np.float32), target, reference="fp32")
    assert set(timed.stats) == {"int8", "fp32"} and set(timed.ratios) == {"int8"}
    assert all(len(s.round_medians_ms) == 3 for s in timed.stats.values())


def test_profiling_an_int8_target_times_quantized_micro_models(tmp_path):
    """The profiler hands an fp32 micro-model to the backend; an int8 target's kernels are quantized ones."""
    g = Geometry("conv", 1, 8, 8, 3, 1, 0)
    path = tmp_path / "micro.onnx"
    onnx.save(micro_model(g, 16, 16), path)
    events = profile_events(load_target("cpu-ort-int8"), str(path), input_for(g, 16), runs=2)
    kernels = {e["args"]["op_name"] for e in events if e.get("cat") == "Node" and "op_name" in e.get("args", {})}
    assert "QLinearConv" in kernels and "Conv" not in kernels
    fp32 = profile_events(load_target("cpu-ort"), str(path), input_for(g, 16), runs=2)
    assert "QLinearConv" not in {e.get("args", {}).get("op_name") for e in fp32}


def test_calibration_fields_of_a_target():
    t = load_target("cpu-ort-int8")
    assert (t.precision, t.backend, t.calibration_count, t.calibration_data) == ("int8", "onnxruntime", 300, "")
    with pytest.raises(TargetError, match="calibration_count must be a positive integer"):
        target_from_dict("x", {"backend": "onnxruntime", "calibration_count": 0})
    with pytest.raises(TargetError, match="calibration_data must be"):
        target_from_dict("x", {"backend": "onnxruntime", "calibration_data": 5})
    assert t.calibration_method == "percentile"  # the shipped target; a new one defaults to minmax
    assert target_from_dict("x", {"backend": "onnxruntime"}).calibration_method == "minmax"
    with pytest.raises(TargetError, match=r"calibration_method = 'kl', expected one of \('minmax'"):
        target_from_dict("x", {"backend": "onnxruntime", "calibration_method": "kl"})
    with pytest.raises(TargetError, match="is for onnxruntime targets; openvino calibrates with its own quantizer"):
        target_from_dict("x", {"backend": "openvino", "precision": "int8", "calibration_method": "entropy"})
    with pytest.raises(CalibrationError, match=r"unknown calibration method 'kl'; expected one of \('minmax'"):
        quantize_onnx("unused.onnx", "unused.int8.onnx", random_samples(SHAPE), "kl")


def test_a_nearly_constant_activation_falls_back_to_minmax_with_a_warning(tmp_path):
    """numpy cannot bin a range a few float steps wide (a saturated gate of a model with random weights):
    percentile calibration then quantizes by minmax, and says so, instead of failing."""

    class Gated(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.gate = torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Conv2d(8, 8, 1)
            with torch.no_grad():
                self.gate.weight.mul_(1e-6)  # the gate's input barely moves: its sigmoid spans a few float steps
                self.gate.bias.fill_(3.0)

        def forward(self, x):
            y = torch.relu(self.conv(x))
            return y * torch.sigmoid(self.gate(y.mean((2, 3), keepdim=True)))

    torch.manual_seed(0)  # whether the gate spans a few float steps or none at all depends on the weights
    path = tmp_path / "gated.onnx"
    export_onnx(Gated().eval(), torch.randn(1, 3, 16, 16), path)
    samples = random_samples((1, 3, 16, 16), 8)
    with pytest.warns(UserWarning, match="percentile calibration cannot bin .* calibrated by minmax instead"):
        out = quantize_onnx(path, tmp_path / "gated.int8.onnx", samples, "percentile")
    assert activation_scales(out) == activation_scales(quantize_onnx(path, tmp_path / "minmax.onnx", samples))
