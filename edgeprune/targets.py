"""Targets: how to run on a device (NAME.toml, shipped or the user's), loaded into a typed, validated Target."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from edgeprune.errors import EdgepruneError
from edgeprune.paths import shipped_dir, user_dir

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ENV_VAR = "EDGEPRUNE_TARGETS"
BACKEND_NAMES = ("onnxruntime", "torch", "tensorrt", "openvino", "executorch")


class TargetError(EdgepruneError, ValueError):
    """An unknown target or a target file with a bad field."""


@dataclass(frozen=True)
class Target:
    """One way of running a model on a device; every timing and profile names one."""

    name: str
    backend: str
    device: str = "cpu"
    precision: str = "fp32"
    batch: int = 1
    input: str | tuple[int, int, int] = "model"
    threads: int = 1
    warmup: int = 10
    repeats: int = 30
    rounds: int = 5
    providers: tuple[str, ...] = ()
    channels_last: bool = False
    cuda_graphs: bool = False
    platform: str = ""
    channel_align: int = 0  # widths the runtime computes fastest are multiples of this; 0 = decide here
    # int8: the images the deployed model is calibrated on (a data set name or an image folder; "" = the
    # command's data) and how many; timing-only runs (profiling, measured rounds) calibrate on random inputs
    calibration_data: str = ""
    calibration_count: int = 300
    # how activation ranges come from those images: minmax (the widest value seen), or entropy / percentile,
    # which clip rare outliers (onnxruntime targets only; see backends/quantize.py)
    calibration_method: str = "minmax"
    # which layers run in int8: "all" that the quantizer takes, or "measured": the deployed model leaves in fp32
    # the parts and kinds of layers that time faster in fp32 on this device (onnxruntime, OpenVINO;
    # backends/int8_layers.py)
    int8_layers: str = "all"
    description: str = ""
    source: str = field(default="", compare=False)

    def as_fp32(self) -> Target:
        """The same runtime in fp32: what an int8 target's model is weighed against (its int8 settings reset)."""
        return replace(self, precision="fp32", int8_layers="all")

    def input_shape(self, model_input: tuple[int, ...]) -> tuple[int, ...]:
        """The batch-first input shape this target times at."""
        chw = model_input if self.input == "model" else tuple(self.input)
        return (self.batch, *chw)


def channel_align(target: Target) -> int:
    """Channel multiple the target's kernels block by: set in the target, else from the hardware.

    ORT's and oneDNN's CPU kernels block channels by 16 with AVX-512 and by 8 otherwise; fp16 tensor
    cores want multiples of 8. Widths off these multiples can run *slower* than the unpruned model (ORT on
    AVX-512 still blocks a multiple of 8, padded to 16, at the cost of the next multiple of 16).
    """
    if target.channel_align:
        return target.channel_align
    if target.device == "cuda":
        return 8
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return 8
    return 16 if " avx512f" in flags else 8


CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
INT8_LAYERS = ("all", "measured")
INT8_LAYER_BACKENDS = ("onnxruntime", "openvino", "executorch")  # whose quantizers leave named nodes in float
_CHOICES = {"backend": BACKEND_NAMES, "device": ("cpu", "cuda"), "precision": ("fp32", "fp16", "int8"),
            "calibration_method": CALIBRATION_METHODS, "int8_layers": INT8_LAYERS}


def targets_dirs(explicit: str | os.PathLike | None = None) -> list[Path]:
    """Folders searched for target files, first match wins: ``targets_dir``, ``$EDGEPRUNE_TARGETS``, the user's
    folder (``$EDGEPRUNE_HOME/targets``), then the targets shipped with edgeprune."""
    dirs = [Path(explicit)] if explicit else []
    if os.environ.get(ENV_VAR):
        dirs.append(Path(os.environ[ENV_VAR]))
    dirs += [user_dir("targets"), shipped_dir("targets")]
    return [d for i, d in enumerate(dirs) if d.is_dir() and d not in dirs[:i]]


def list_targets(targets_dir: str | None = None) -> list[str]:
    names: set[str] = set()
    for d in targets_dirs(targets_dir):
        names.update(p.stem for p in d.glob("*.toml"))
    return sorted(names)


def load_target(name_or_path: str, targets_dir: str | None = None) -> Target:
    """A target by name (searched in :func:`targets_dirs`) or by path to a TOML file."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        candidates = (d / f"{name_or_path}.toml" for d in targets_dirs(targets_dir))
        path = next((c for c in candidates if c.is_file()), None)
        if path is None:
            known = ", ".join(list_targets(targets_dir)) or "none found"
            raise TargetError(f"unknown target {name_or_path!r}; known: {known}")
    if not path.is_file():
        raise TargetError(f"target file {path} does not exist")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise TargetError(f"{path}: not valid TOML ({exc})") from exc
    return target_from_dict(path.stem, data, str(path))


def target_from_dict(name: str, data: dict, source: str = "<dict>") -> Target:
    allowed = {f.name for f in fields(Target)} - {"name", "source"}
    unknown = set(data) - allowed
    if unknown:
        raise TargetError(f"{source}: unknown field(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    if "backend" not in data:
        raise TargetError(f"{source}: missing required field 'backend' (one of {BACKEND_NAMES})")
    for key, choices in _CHOICES.items():
        if key in data and data[key] not in choices:
            raise TargetError(f"{source}: {key} = {data[key]!r}, expected one of {choices}")
    for key in ("batch", "threads", "warmup", "repeats", "rounds", "channel_align", "calibration_count"):
        low = 0 if key in ("warmup", "channel_align") else 1
        if key in data and (not isinstance(data[key], int) or data[key] < low):
            raise TargetError(f"{source}: {key} must be a positive integer, got {data[key]!r}")
    if not isinstance(data.get("calibration_data", ""), str):
        raise TargetError(f"{source}: calibration_data must be a data set name or a folder's path, "
                          f"got {data['calibration_data']!r}")
    if data.get("calibration_method", "minmax") != "minmax" and data["backend"] != "onnxruntime":
        raise TargetError(f"{source}: calibration_method = {data['calibration_method']!r} is for onnxruntime "
                          f"targets; {data['backend']} calibrates with its own quantizer (leave it out)")
    if data.get("int8_layers", "all") != "all" and (data.get("precision") != "int8" or data["backend"] not in
                                                     INT8_LAYER_BACKENDS):  # fmt: skip
        raise TargetError(f"{source}: int8_layers = {data['int8_layers']!r} is for int8 targets of "
                          f"{', '.join(INT8_LAYER_BACKENDS)} (leave it out)")  # fmt: skip
    value = dict(data)
    if isinstance(value.get("input"), list):
        if len(value["input"]) != 3 or not all(isinstance(v, int) and v > 0 for v in value["input"]):
            raise TargetError(f"{source}: input must be \"model\" or [C, H, W], got {value['input']!r}")
        value["input"] = tuple(value["input"])
    elif value.get("input", "model") != "model":
        raise TargetError(f"{source}: input must be \"model\" or [C, H, W], got {value['input']!r}")
    value["providers"] = tuple(value.get("providers", ()))
    return Target(name=name, source=source, **value)
