"""What both session scripts time: cpu-xnnpack, MobileNet-V2 (random init, 224²) and its calibration variants."""

import warnings

from edgeprune.latency.profiler import build_model, model_input_shape
from edgeprune.latency.variants import calibration_variants
from edgeprune.targets import load_target


def setup():
    """(target, dense model, input shape, {label: variant}) with the labels of a calibration."""
    warnings.simplefilter("ignore")
    target = load_target("cpu-xnnpack")
    model = build_model("mobilenet_v2", target)
    shape = model_input_shape("mobilenet_v2", target)
    return target, model, shape, dict(calibration_variants(model, "mobilenet_v2", shape, align=16))
