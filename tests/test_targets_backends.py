"""Targets and runtime backends."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from edgeprune.backends import (
    BackendError,
    get_backend,
    measure_interleaved,
    measure_latency,
    time_runners,
    unavailable_reason,
)
from edgeprune.cli import main
from edgeprune.export import export_onnx
from edgeprune.models import create_model
from edgeprune.targets import TargetError, list_targets, load_target, target_from_dict

QUICK = {"warmup": 2, "repeats": 5, "rounds": 3}


def test_shipped_targets_load():
    expected = {"cpu-ort": ("onnxruntime", "cpu", "fp32"), "cpu-torch": ("torch", "cpu", "fp32"),
                "cuda-ort": ("onnxruntime", "cuda", "fp32"), "cuda-torch-fp16": ("torch", "cuda", "fp16"),
                "cuda-trt-fp16": ("tensorrt", "cuda", "fp16"), "jetson-orin-trt-fp16": ("tensorrt", "cuda", "fp16")}
    assert set(expected) <= set(list_targets())
    for name, spec in expected.items():
        target = load_target(name)
        assert (target.backend, target.device, target.precision) == spec and target.name == name
    assert load_target("cpu-ort").input_shape((3, 32, 32)) == (1, 3, 32, 32)


@pytest.mark.parametrize(
    "text, message",
    [
        ("backend = 'tflite'", "backend = 'tflite'"),
        ("device = 'cpu'", "missing required field 'backend'"),
        ("backend = 'torch'\nthreads = 0", "threads must be a positive integer"),
        ("backend = 'torch'\ninput = [3, 32]", "input must be"),
        ("backend = 'torch'\nspeed = 'fast'", "unknown field"),
        ("backend = = 'torch'", "not valid TOML"),
    ],
)
def test_bad_target_files(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(TargetError, match=message):
        load_target(str(path))


def test_unknown_target_lists_known_ones():
    with pytest.raises(TargetError, match="cpu-ort"):
        load_target("no-such-target")


@pytest.fixture(scope="module")
def resnet20_onnx(tmp_path_factory):
    model = create_model("cifar_resnet20").eval()
    path = tmp_path_factory.mktemp("onnx") / "r20.onnx"
    export_onnx(model, torch.randn(1, 3, 32, 32), path)
    return model, path


def test_onnxruntime_runs_matches_torch_and_times(resnet20_onnx):
    model, path = resnet20_onnx
    target = target_from_dict("t", {"backend": "onnxruntime", "threads": 1, **QUICK})
    runner = get_backend("onnxruntime").prepare(target, onnx_path=str(path))
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32), dtype=np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(runner.run(x), expected, rtol=1e-4, atol=1e-5)
    stats = measure_latency(runner, x, target)
    assert stats.samples == 15 and len(stats.round_medians_ms) == 3
    assert 0 < stats.min_ms <= stats.median_ms <= stats.p90_ms


class LoggingRunner:
    """Records its calls; what the timing does with them is tests/test_timing.py's (on a fake clock)."""

    def __init__(self, name: str, log: list) -> None:
        self.name, self.log = name, log

    def run(self, x):
        self.log.append((self.name, "run"))
        return x

    def sync(self) -> None:
        self.log.append((self.name, "sync"))


def test_backend_timing_waits_for_the_device_after_every_run_with_the_targets_counts():
    target = target_from_dict("t", {"backend": "torch", "warmup": 2, "repeats": 3, "rounds": 4})
    log: list = []
    stats = measure_interleaved({"a": LoggingRunner("a", log), "b": LoggingRunner("b", log)}, np.zeros(1), target)
    assert stats["a"].samples == stats["b"].samples == 12 and len(stats["a"].round_medians_ms) == 4
    assert log[0::2] == [(k, "run") for k in "aabb" + "aaabbb" + "bbbaaa" + "aaabbb" + "bbbaaa"]
    assert log[1::2] == [(k, "sync") for k, _ in log[0::2]]
    timed = time_runners({"a": LoggingRunner("a", []), "b": LoggingRunner("b", [])}, np.zeros(1), target, "a")
    assert list(timed.ratios) == ["b"] and timed.ratios["b"].rounds == 4


class ConvertingRunner(LoggingRunner):
    """A runner whose input is converted before it runs (as a GPU runner copies it to the device)."""

    def to_input(self, x: np.ndarray):
        self.log.append((self.name, "convert"))
        return ("converted", x)

    def run(self, x) -> None:
        assert x[0] == "converted", "the harness handed run an unconverted input"
        super().run(x)


def test_timing_converts_the_input_once_not_in_every_timed_run():
    target = target_from_dict("t", {"backend": "torch", "warmup": 1, "repeats": 3, "rounds": 2})
    log: list = []
    measure_latency(ConvertingRunner("a", log), np.zeros(1), target)
    assert log.count(("a", "convert")) == 1 and log.count(("a", "run")) == 7


@pytest.mark.filterwarnings("ignore:Specified provider 'CUDAExecutionProvider' is not in available:UserWarning")
def test_onnxruntime_refuses_a_silent_cpu_fallback(resnet20_onnx):
    _, path = resnet20_onnx
    target = target_from_dict("gpu", {"backend": "onnxruntime", "device": "cuda"})
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("CUDA provider present: no fallback to provoke")
    assert "CUDAExecutionProvider" in unavailable_reason(target)
    with pytest.raises(BackendError, match="refusing to time on CPU"):
        get_backend("onnxruntime").prepare(target, onnx_path=str(path))


def test_onnxruntime_memory_in_a_fresh_process(resnet20_onnx):
    _, path = resnet20_onnx
    mem = get_backend("onnxruntime").memory(load_target("cpu-ort"), str(path), (1, 3, 32, 32))
    assert mem["peak_rss_mb"] >= mem["rss_after_mb"] > 0 and mem["runtime_mb"] > 0


def test_torch_backend_cpu(resnet20_onnx):
    model, _ = resnet20_onnx
    target = target_from_dict("t", {"backend": "torch", "threads": 1, **QUICK})
    runner = get_backend("torch").prepare(target, module=model)
    x = np.zeros((1, 3, 32, 32), np.float32)
    assert runner.run(x).shape == (1, 10)
    x1 = np.random.default_rng(0).standard_normal((1, 3, 32, 32), dtype=np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x1))
    # a converted input runs as the array it came from, and converting it again changes nothing
    assert torch.allclose(runner.run(runner.to_input(runner.to_input(x1))), expected, atol=1e-5)
    assert not torch.allclose(runner.run(x), expected, atol=1e-3)
    stats = measure_latency(runner, x, target)
    assert stats.samples == QUICK["rounds"] * QUICK["repeats"] and len(stats.round_medians_ms) == QUICK["rounds"]
    assert 0 < stats.min_ms <= min(stats.round_medians_ms) <= stats.median_ms <= max(stats.round_medians_ms)
    with pytest.raises(BackendError, match="module="):
        get_backend("torch").prepare(target)


def test_torch_runner_sets_its_threads_for_its_own_calls_only():
    """torch's thread count belongs to the whole process: a runner that kept its own set after a run slowed every
    later torch call of the caller (two test workers on two cores ran a detector refit 19x slower)."""
    seen = []

    class Probe(torch.nn.Module):
        def forward(self, x):
            seen.append(torch.get_num_threads())
            return x

    before = torch.get_num_threads()
    target = target_from_dict("t", {"backend": "torch", "threads": before + 1, **QUICK})
    runner = get_backend("torch").prepare(target, module=Probe())
    assert torch.get_num_threads() == before
    runner.run(np.zeros((1, 3, 4, 4), np.float32))
    assert seen == [before + 1] and torch.get_num_threads() == before


def test_torch_runner_converts_a_copy_not_the_callers_model(resnet20_onnx):
    model, _ = resnet20_onnx
    target = target_from_dict("t", {"backend": "torch", "precision": "fp16", "channels_last": True, **QUICK})
    runner = get_backend("torch").prepare(target, module=model)
    assert runner.module.conv1.weight.dtype == torch.float16
    assert model.conv1.weight.dtype == torch.float32 and model.conv1.weight.is_contiguous()


def test_tensorrt_missing_is_a_clear_error():
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        reason = unavailable_reason(load_target("cuda-trt-fp16"))
        assert "tensorrt is not installed" in reason and "[trt]" in reason
        with pytest.raises(BackendError, match="tensorrt is not installed"):
            get_backend("tensorrt").prepare(load_target("cuda-trt-fp16"), onnx_path="x.onnx", input_shape=(1, 3, 8, 8))
    else:
        pytest.skip("tensorrt is installed: see the trt-marked test")


@pytest.mark.trt
def test_tensorrt_engine(resnet20_onnx):
    pytest.importorskip("tensorrt", reason="TensorRT is not installable on edgeprune's CI machines")
    if not torch.cuda.is_available():
        pytest.skip("TensorRT needs a CUDA device")
    model, path = resnet20_onnx
    target = load_target("cuda-trt-fp16")
    runner = get_backend("tensorrt").prepare(target, onnx_path=str(path), input_shape=(1, 3, 32, 32))
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32), dtype=np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(runner.run(x), expected, rtol=5e-2, atol=5e-2)  # fp16
    assert runner.engine_bytes > 0 and runner.device_memory_bytes > 0
    assert sum(runner.layer_times(x, runs=3).values()) > 0


def test_cli_targets():
    out = CliRunner().invoke(main, ["targets"])
    assert out.exit_code == 0
    assert "cpu-ort" in out.output and "runs here" in out.output and "cuda-trt-fp16" in out.output


def test_the_shortcut_layer_is_lowered_to_executorch_as_its_exact_convolution():
    """XNNPACK runs no gather: edgeprune's ChannelRemap goes to ExecuTorch as the 1x1 convolution computing the
    same, on a copy of the model."""
    from edgeprune.backends.executorch import lowered_form
    from edgeprune.models.layers import ChannelRemap

    model = create_model("cifar_resnet20").eval()
    lowered = lowered_form(model)
    remaps = [n for n, m in model.named_modules() if isinstance(m, ChannelRemap)]
    assert len(remaps) == 2 and all(type(lowered.get_submodule(n)) is torch.nn.Conv2d for n in remaps)
    assert all(isinstance(model.get_submodule(n), ChannelRemap) for n in remaps)  # the model is untouched
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(lowered(x), model(x))
    remap = ChannelRemap([-1, 2, 0, -1, 1], 3, stride=2)  # zero channels, a permutation, an odd side
    y = torch.randn(1, 3, 9, 9)
    assert torch.equal(remap.as_conv()(y), remap(y))
    plain = torch.nn.Conv2d(3, 4, 1)
    assert lowered_form(plain) is plain
