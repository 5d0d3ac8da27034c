"""Targets and runtime backends."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from edgeprune.backends import BackendError, get_backend, measure_interleaved, measure_latency, unavailable_reason
from edgeprune.cli import main
from edgeprune.export import export_onnx
from edgeprune.models import create_model
from edgeprune.targets import TargetError, list_targets, load_target, target_from_dict

QUICK = {"warmup": 2, "repeats": 5, "rounds": 3}


def test_shipped_targets_load():
    names = list_targets()
    for required in ("cpu-ort", "cpu-torch", "cuda-torch-fp16", "cuda-ort", "cuda-trt-fp16", "jetson-orin-trt-fp16"):
        assert required in names
        target = load_target(required)
        assert target.backend in ("onnxruntime", "torch", "tensorrt") and target.rounds >= 1
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


@pytest.mark.filterwarnings("ignore:Specified provider 'CUDAExecutionProvider' is not in available:UserWarning")
class DriftingRunner:
    """Sleeps ``base_ms`` times a factor that grows with every call made by any runner: a machine slowing
    down while it measures."""

    calls = 0

    def __init__(self, base_ms: float) -> None:
        self.base_ms = base_ms

    def run(self, x):
        DriftingRunner.calls += 1
        time.sleep(self.base_ms * (1 + 0.03 * DriftingRunner.calls) / 1e3)
        return x

    def sync(self) -> None:
        pass


def test_interleaved_timing_cancels_drift_that_sequential_timing_credits_to_a_model():
    target = target_from_dict("drift", {"backend": "torch", "warmup": 1, "repeats": 5, "rounds": 4})
    x = np.zeros(1)
    DriftingRunner.calls = 0
    slow, fast = DriftingRunner(8.0), DriftingRunner(4.0)  # truly 2x apart; long enough that sleep overshoot is small
    stats = measure_interleaved({"slow": slow, "fast": fast}, x, target)
    assert stats["slow"].samples == stats["fast"].samples == 20
    assert 1.6 < stats["slow"].median_ms / stats["fast"].median_ms < 2.3  # within-round drift remains
    DriftingRunner.calls = 0
    one_after_the_other = measure_latency(slow, x, target).median_ms / measure_latency(fast, x, target).median_ms
    assert one_after_the_other < 1.5  # the drift, not the model, sets this ratio


class BurstRunner:
    """Sleeps 2 ms, except through one round, when a neighbour's burst makes it 5x slower."""

    def __init__(self, burst_calls: range) -> None:
        self.calls, self.burst_calls = 0, burst_calls

    def run(self, x):
        self.calls += 1
        time.sleep((10.0 if self.calls in self.burst_calls else 2.0) / 1e3)
        return x

    def sync(self) -> None:
        pass


def test_one_slow_round_moves_neither_the_median_nor_the_spread():
    target = target_from_dict("burst", {"backend": "torch", "warmup": 1, "repeats": 3, "rounds": 8})
    stats = measure_latency(BurstRunner(burst_calls=range(8, 11)), np.zeros(1), target)  # all of round 3
    assert max(stats.round_medians_ms) > 4 * min(stats.round_medians_ms)  # the burst is in the data
    assert 1.9 < stats.median_ms < 3.0
    assert stats.spread_pct < 30  # interquartile: the range would read about 400 %


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
    assert measure_latency(runner, x, target).median_ms > 0
    with pytest.raises(BackendError, match="module="):
        get_backend("torch").prepare(target)


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
