"""What the session scripts time: MobileNet-V2 (random init, 224²) on a target, and its calibration variants."""

import warnings

from edgeprune.latency.profiler import build_model, model_input_shape
from edgeprune.latency.variants import calibration_variants
from edgeprune.targets import load_target


def setup(name: str):
    """(target, dense model, input shape) for target ``name``."""
    warnings.simplefilter("ignore")
    target = load_target(name)
    return target, build_model("mobilenet_v2", target), model_input_shape("mobilenet_v2", target)


def variants(model, shape) -> dict:
    """{label: variant}: the variants of a calibration on the 16-channel blocking."""
    return dict(calibration_variants(model, "mobilenet_v2", shape, align=16))
