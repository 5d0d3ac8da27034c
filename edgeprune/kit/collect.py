"""Measure an edgeprune device kit ON THE DEVICE. Needs only numpy and onnxruntime (or tensorrt).

    python -m edgeprune.kit.collect KIT [--out result.json] [--threads N]
    python KIT/collect.py KIT ...          (no edgeprune installed: every kit carries this file)

Then copy the result back and `edgeprune profile --import result.json`. Writes the result atomically.
Torch-free on purpose: ``write_kit`` copies this file and ``edgeprune/timing.py`` into the kit, and this
file times with that module (``edgeprune.timing`` when run from the package).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

RESULT_SCHEMA = "edgeprune.kit-result/1"
KIT_SCHEMA = "edgeprune.kit/1"
TIMING_FILE = "timing.py"  # the harness's name beside this file in a kit


def _load_timing():
    """The timing harness: the copy beside this file in a kit (it matches this file's version), else
    ``edgeprune.timing``."""
    beside = Path(__file__).resolve().with_name(TIMING_FILE)
    if __package__ or not beside.exists():
        from edgeprune import timing

        return timing
    spec = importlib.util.spec_from_file_location("edgeprune_kit_timing", beside)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


timing = _load_timing()


# CPU features that change which kernels a runtime picks, int8 ones above all: a virtual machine often names its
# CPU only "Intel(R) Xeon(R) Processor", whatever its generation, and AMX or VNNI can make int8 several times faster.
ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16",
             "asimddp", "i8mm", "sve", "bf16")  # fmt: skip


def cpu_facts(cpuinfo: str) -> tuple[str | None, str]:
    """The CPU model and its :data:`ISA_FLAGS`, space-separated, from the text of /proc/cpuinfo (x86 "flags",
    ARM "Features")."""
    model, flags = None, set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model is None:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
    return model, " ".join(f for f in sorted(ISA_FLAGS) if f in flags)


def cpu_generation(cpuinfo: str) -> str | None:
    """Vendor, family and model numbers from the text of /proc/cpuinfo (x86), or implementer and part (ARM): what
    tells two CPUs apart that a virtual machine names alike ("AMD EPYC" is Zen 3 as well as Zen 4)."""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    if "cpu family" in fields and "model" in fields:
        return f"{fields.get('vendor_id', '?')} family {fields['cpu family']} model {fields['model']}"
    if "CPU implementer" in fields and "CPU part" in fields:
        return f"implementer {fields['CPU implementer']} part {fields['CPU part']}"
    return None


def fingerprint(backend: str) -> dict:
    """What decides a measurement's validity without torch: CPU model, its int8/vector features, cores, the
    runtime's version. The profile's device fingerprint (edgeprune.latency.profile) is this plus torch and GPU
    facts."""
    cpu, isa, generation = platform.processor() or platform.machine(), None, None
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        model, isa = cpu_facts(cpuinfo)
        cpu, generation = model or cpu, cpu_generation(cpuinfo)
    except OSError:
        pass
    fp = {"cpu": cpu, "cores": os.cpu_count(), "machine": platform.machine(), "system": platform.system()}
    if isa is not None:
        fp["isa"] = isa
    if generation is not None:
        fp["cpu_generation"] = generation
    if backend == "onnxruntime":
        import onnxruntime

        fp["onnxruntime"] = onnxruntime.__version__
    elif backend == "tensorrt":
        import tensorrt

        fp["tensorrt"] = tensorrt.__version__
    elif backend == "openvino":
        import openvino

        fp["openvino"] = openvino.__version__
    elif backend == "executorch":
        from executorch.version import __version__

        fp["executorch"] = __version__
    return fp


def ort_runner(path: Path, target: dict, threads: int):
    """A session set up as edgeprune.backends.onnxruntime.session_options sets it up (fixed threads, no
    spinning), which this file cannot import on a device without edgeprune."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    default = "CUDAExecutionProvider" if target["device"] == "cuda" else "CPUExecutionProvider"
    wanted = target.get("providers") or [default]
    session = ort.InferenceSession(str(path), opts, providers=wanted)
    if session.get_providers()[0] != wanted[0]:  # a missing CUDA/TRT library silently falls back to CPU
        sys.exit(f"requested {wanted[0]} but onnxruntime runs on {session.get_providers()}: not timing on CPU")
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})


def trt_runner(path: Path, target: dict, shape: list[int]):
    """TensorRT with cuda-python buffers (no torch). Not verifiable on edgeprune's own machines."""
    import tensorrt as trt
    from cuda import cudart

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(path.read_bytes()):
        sys.exit(f"TensorRT could not parse {path}")
    config = builder.create_builder_config()
    if target.get("precision") == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    engine = trt.Runtime(logger).deserialize_cuda_engine(builder.build_serialized_network(network, config))
    context = engine.create_execution_context()
    _, stream = cudart.cudaStreamCreate()
    buffers = {}
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
            context.set_input_shape(name, shape)
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        itemsize = np.dtype(trt.nptype(engine.get_tensor_dtype(name))).itemsize
        nbytes = int(np.prod(context.get_tensor_shape(name))) * itemsize
        _, ptr = cudart.cudaMalloc(nbytes)
        buffers[name] = ptr
        context.set_tensor_address(name, ptr)

    def run(x):
        context.execute_async_v3(stream)
        cudart.cudaStreamSynchronize(stream)

    return run


def time_alone(run, x: np.ndarray, warmup: int, repeats: int, rounds: int) -> tuple[float, float]:
    """Median ms and spread (% of it) of one model."""
    stats = timing.time_interleaved({"model": lambda: run(x)}, warmup, repeats, rounds).stats["model"]
    return stats.median_ms, stats.spread_pct


def time_beside(run, dense, x: np.ndarray, warmup: int, repeats: int, rounds: int) -> tuple[float, float]:
    """(dense median ms, ``run``'s paired ratio to it), the two timed in interleaved rounds: a machine slowing
    down while it measures slows both alike."""
    t = timing.time_interleaved({"dense": lambda: dense(x), "model": lambda: run(x)}, warmup, repeats, rounds,
                                reference="dense")  # fmt: skip
    return t.stats["dense"].median_ms, t.ratios["model"].median


def calibrate(entries: list[dict], kit: Path, runner, target: dict, rng) -> list[dict]:
    """Each calibration model timed beside a fresh session of its dense model (label uniform-0.0); its ms is
    its ratio to that session times the median dense ms of the model's pairs, as edgeprune does."""
    out = []
    for model in dict.fromkeys(c["model"] for c in entries):
        mine = [c for c in entries if c["model"] == model]
        dense = next((c for c in mine if c["label"] == "uniform-0.0"), None)
        if dense is None:
            sys.exit(f"the kit has no dense calibration model (uniform-0.0) for {model}")
        x = rng.standard_normal(dense["input"], dtype=np.float32)
        pairs = [time_beside(runner(kit / c["file"], c["input"]), runner(kit / dense["file"], dense["input"]), x,
                             target["warmup"], target["repeats"], target["rounds"]) for c in mine]  # fmt: skip
        reference = statistics.median(d for d, _ in pairs)
        out += [{**{k: c[k] for k in ("model", "label", "layers")}, "measured_ms": reference * ratio,
                 "measured_ratio": ratio, "dense_ms": d} for c, (d, ratio) in zip(mine, pairs)]  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edgeprune.kit.collect", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("kit")
    ap.add_argument("--out", default=None, help="result file (default: KIT/result.json)")
    ap.add_argument("--threads", type=int, default=None, help="override the target's thread count")
    args = ap.parse_args(argv)
    kit = Path(args.kit)
    try:
        manifest = json.loads((kit / "manifest.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        sys.exit(f"{kit}/manifest.json unreadable: {exc}")
    if manifest.get("schema") != KIT_SCHEMA:
        sys.exit(f"{kit} is not an edgeprune kit (schema {manifest.get('schema')!r})")
    target = manifest["target"]
    threads = args.threads or target.get("threads", 1)
    backend = target["backend"]

    def runner(path, shape):
        return ort_runner(path, target, threads) if backend == "onnxruntime" else trt_runner(path, target, shape)

    rng = np.random.default_rng(0)
    mt = manifest["micro_timing"]
    measurements = []
    for i, e in enumerate(manifest["entries"]):
        x = rng.standard_normal(e["input"], dtype=np.float32)
        ms, spread = time_alone(runner(kit / e["file"], e["input"]), x, mt["warmup"], mt["repeats"], mt["rounds"])
        measurements.append({**{k: e[k] for k in ("key", "cin", "cout")}, "ms": ms, "spread_pct": spread})
        print(f"\r{i + 1}/{len(manifest['entries'])} micro-models", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    calibration = calibrate(manifest["calibration"], kit, runner, target, rng)
    result = {"schema": RESULT_SCHEMA, "target": target, "settings": manifest["settings"],
              "device": fingerprint(backend), "measurements": measurements, "calibration": calibration}
    out = Path(args.out) if args.out else kit / "result.json"
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=".result.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(result, f)
    os.replace(tmp, out)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
