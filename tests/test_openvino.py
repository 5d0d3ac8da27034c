"""cpu-openvino and cpu-openvino-int8: the OpenVINO runtime on the ONNX export, int8 through NNCF."""

from __future__ import annotations

import sys
from dataclasses import replace

import numpy as np
import onnx
import pytest
import torch

from edgeprune.backends import BackendError, QuantizationError, get_backend, prepare_runner, time_runners
from edgeprune.backends import unavailable_reason as why_not
from edgeprune.backends.openvino import quantize_openvino, runtime_precisions
from edgeprune.export import export_onnx
from edgeprune.latency.layers import Geometry
from edgeprune.latency.micro import input_for, micro_model
from edgeprune.models import create_model
from edgeprune.targets import load_target
from edgeprune.train.calibration import calibration_images
from edgeprune.train.data import load_lossless_subset

SHAPE = (64, 3, 32, 32)  # the 64 test images in one run
COUNT = 64


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = create_model("cifar_resnet20", pretrained=True).eval()
    path = tmp_path_factory.mktemp("ov") / "r20.onnx"
    export_onnx(model, torch.randn(1, 3, 32, 32), path)
    images = calibration_images("cifar10-lossless", COUNT, model, "cifar_resnet20")
    return path, images, load_lossless_subset("test")[0][:64].numpy()


@pytest.fixture(scope="module")
def runners(exported):
    path, images, _ = exported
    int8 = replace(load_target("cpu-openvino-int8"), calibration_count=COUNT)
    return {"ort": prepare_runner(load_target("cpu-ort"), path, SHAPE),
            "ov": prepare_runner(load_target("cpu-openvino"), path, SHAPE),
            "ov-int8": prepare_runner(int8, path, SHAPE, images)}  # fmt: skip


def test_openvino_fp32_matches_onnxruntime(exported, runners):
    _, _, test = exported
    ort, ov = runners["ort"].run(test), runners["ov"].run(test)
    assert ov.shape == (64, 10)
    assert np.linalg.norm(ov - ort) / np.linalg.norm(ort) < 1e-4
    assert runtime_precisions(runners["ov"].compiled)["Convolution"] == {"f32"}  # no bf16 on a bf16-capable CPU


def test_openvino_int8_runs_int8_convolutions_and_agrees_on_top1(exported, runners):
    path, _, test = exported
    runner = runners["ov-int8"]
    assert runner.model_path == path.with_name("r20.ov-int8.xml") and runner.model_path.with_suffix(".bin").is_file()
    assert runner.calibration == "images"
    assert runtime_precisions(runner.compiled)["Convolution"] & {"u8", "i8"}
    assert list(runner.compiled.get_property("EXECUTION_DEVICES")) == ["CPU"]
    assert int(runner.compiled.get_property("INFERENCE_NUM_THREADS")) == load_target("cpu-openvino-int8").threads
    q, f = runner.run(test), runners["ort"].run(test)
    assert (q.argmax(1) == f.argmax(1)).mean() >= 0.9
    assert np.abs(q - f).max() > 1e-3  # quantized, not the fp32 model


def test_openvino_runners_time_through_the_shared_harness(exported, runners):
    target = replace(load_target("cpu-openvino"), warmup=1, repeats=2, rounds=3)
    timed = time_runners(runners, np.zeros(SHAPE, np.float32), target, reference="ort")
    assert set(timed.stats) == {"ort", "ov", "ov-int8"} and set(timed.ratios) == {"ov", "ov-int8"}
    assert all(len(s.round_medians_ms) == 3 for s in timed.stats.values())


def test_memory_of_the_compiled_int8_model(runners):
    mem = get_backend("openvino").memory(load_target("cpu-openvino-int8"), str(runners["ov-int8"].model_path),
                                         (1, 3, 32, 32))  # fmt: skip
    assert mem["rss_after_mb"] > mem["rss_before_mb"] and mem["runtime_mb"] > 0
    assert mem["peak_rss_mb"] >= mem["rss_after_mb"] - 1


def test_failed_nncf_quantization_leaves_the_previous_artifact(exported, runners, tmp_path):
    path, images, _ = exported
    out = tmp_path / "m.xml"
    for suffix in (".xml", ".bin"):  # a previous good artifact
        out.with_suffix(suffix).write_bytes(runners["ov-int8"].model_path.with_suffix(suffix).read_bytes())
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(QuantizationError, match="NNCF could not quantize"):
        quantize_openvino(path, out, np.zeros((4, 3, 16, 16), np.float32))  # the model's input is 32x32
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_targets_say_why_openvino_cannot_run(monkeypatch):
    assert why_not(load_target("cpu-openvino")) is None and why_not(load_target("cpu-openvino-int8")) is None
    monkeypatch.setitem(sys.modules, "nncf", None)  # an import of it now fails
    assert "nncf is not installed (pip install 'edgeprune[openvino]')" in why_not(load_target("cpu-openvino-int8"))
    assert why_not(load_target("cpu-openvino")) is None  # fp32 needs only the runtime
    monkeypatch.setitem(sys.modules, "openvino", None)
    assert "openvino is not installed" in why_not(load_target("cpu-openvino"))
    with pytest.raises(BackendError, match="edgeprune\\[openvino\\]"):
        prepare_runner(load_target("cpu-openvino"), "model.onnx", (1, 3, 32, 32))
    assert "CPU only" in why_not(replace(load_target("cpu-openvino"), device="cuda"))


def test_a_profiler_micro_model_runs_in_int8_calibrated_on_random_inputs(tmp_path):
    """Profiling hands the backend fp32 one-layer models with a fixed batch; no images are needed for timing."""
    g = Geometry("conv", 1, 8, 8, 3, 1, 0)
    path = tmp_path / "micro.onnx"
    onnx.save(micro_model(g, 16, 24), path)
    x = input_for(g, 16)
    runner = prepare_runner(load_target("cpu-openvino-int8"), path, x.shape)
    assert runner.calibration == "random" and runner.run(x).shape == (1, 24, 8, 8)
    assert runtime_precisions(runner.compiled)["Convolution"] & {"u8", "i8"}


def test_a_depthwise_micro_model_runs_as_inside_a_network(tmp_path):
    """NNCF quantizes the input of a depthwise conv, but the CPU plugin runs grouped convs in f32 (as it does all 17
    of MobileNet-V2's); the int8 check leaves them out, so their table is what the deployed network runs."""
    g = Geometry("dwconv", 1, 16, 16, 3, 1, 1)
    path = tmp_path / "dw.onnx"
    onnx.save(micro_model(g, 32, 32), path)
    x = input_for(g, 32)
    runner = prepare_runner(load_target("cpu-openvino-int8"), path, x.shape)
    assert runner.run(x).shape == (1, 32, 16, 16)
    assert runner.model_path.suffix == ".xml"  # went through NNCF, not the fp32 export


def test_compiling_leaves_the_threads_signal_stack_where_it_was(exported):
    """OpenVINO's CPU plugin moves the thread's alternate signal stack onto memory of its own, which it can free
    while the stack still points there: the next signal a Python handler takes (a data-loader worker's SIGCHLD)
    then crashed the process. edgeprune puts the stack back after compiling."""
    from edgeprune.backends.openvino import compile_for
    from edgeprune.backends.signal_stack import current_signal_stack

    before = current_signal_stack()
    models = [compile_for(load_target("cpu-openvino"), exported[0], (1, 3, 32, 32)) for _ in range(2)]
    assert current_signal_stack() == before
    del models[0]  # the first model's memory goes while the second lives
    assert current_signal_stack() == before
