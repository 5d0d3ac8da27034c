"""The file a target's runtime loads: built as ``validate`` measures it, and copied where the user asks
(``edgeprune export --target``, :func:`edgeprune.export.deployed_file`). On an int8 target that is the
quantized model: a QDQ ONNX for onnxruntime, an OpenVINO IR (.xml + .bin) for OpenVINO, a .pte program for
ExecuTorch."""

from __future__ import annotations

import shutil
from pathlib import Path

from edgeprune.atomic import atomic_path
from edgeprune.backends import Runner, prepare_runner
from edgeprune.backends.base import BackendError
from edgeprune.backends.int8_layers import Int8Layers
from edgeprune.targets import Target


def deployed_suffix(target: Target) -> str:
    """The file type ``target``'s runtime loads (what ``--out`` must end with)."""
    if target.backend in ("torch", "tensorrt"):
        raise BackendError(f"target {target.name}: the {target.backend} backend builds what it runs on the device "
                           "itself (from the module, or an engine from the ONNX): export without --target")  # fmt: skip
    if target.backend == "executorch":
        return ".pte"
    return ".xml" if target.backend == "openvino" and target.precision == "int8" else ".onnx"


def model_files(path: str | Path) -> list[Path]:
    """A model file and the files that belong to it: ONNX external data (``NAME*`` beside it), an OpenVINO
    IR's weights (the .bin of the same stem)."""
    path = Path(path)
    files = [p for p in path.parent.glob(f"{path.name}*") if p.is_file()]
    if path.suffix == ".xml" and path.with_suffix(".bin").exists():
        files.append(path.with_suffix(".bin"))
    return files


def prepare_deployed(target: Target, source, input_shape: tuple[int, ...],
                     calibration=None) -> tuple[Runner, Int8Layers | None]:  # fmt: skip
    """A runner on what ships to ``target`` (:func:`edgeprune.backends.prepare_runner`), and, on an int8 target
    with ``int8_layers = "measured"``, which layers it leaves in fp32 (timed here first; where every layer is
    faster so, the fp32 model itself ships)."""
    chosen = None
    if target.precision == "int8" and target.int8_layers == "measured":
        from edgeprune.backends.int8_layers import choose_fp32_layers

        chosen = choose_fp32_layers(target, source, input_shape)
    if chosen is None:
        return prepare_runner(target, source, input_shape, calibration), None
    run_on = chosen.runtime_target(target)  # where the fp32 model won, it ships unquantized, as it was timed
    if run_on.precision != "int8":
        return prepare_runner(run_on, source, input_shape), chosen
    return prepare_runner(target, source, input_shape, calibration, chosen.fp32_nodes), chosen


def write_deployed(runner: Runner, out: str | Path) -> list[Path]:
    """Copy the file ``runner`` runs (and its companions, :func:`model_files`) to ``out``; each file is written
    whole or not at all, the weights before the model that names them. Returns the files written."""
    source, out = Path(runner.model_path), Path(out)
    if (source.suffix, out.suffix) == (".onnx", ".xml"):  # an OpenVINO int8 target whose fp32 model won
        from edgeprune.backends.openvino import save_ir

        return [out.with_suffix(".bin"), save_ir(source, out)]
    if source.suffix != out.suffix:
        raise BackendError(f"the runtime loads a {source.suffix} file: name the output FILE{source.suffix}")
    # an IR's weights follow the .xml's name; ONNX external data keeps its own, which the model names
    pairs = [(p, out.with_suffix(".bin") if source.suffix == ".xml" else out.with_name(p.name))
             for p in model_files(source) if p != source]  # fmt: skip
    written = []
    for src, dst in [*pairs, (source, out)]:
        with atomic_path(dst) as tmp:
            shutil.copyfile(src, tmp)
        written.append(dst)
    return written

