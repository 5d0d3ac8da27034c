"""Stage: latency profiles (lookup tables measured on a target) and the predictor built on them."""

from edgeprune.latency.layers import Geometry, Layer, collect_layers
from edgeprune.latency.model import LatencyModel, Prediction
from edgeprune.latency.profile import Profile, ProfileError, ProfileMismatchWarning, device_fingerprint, device_slug

__all__ = [
    "Geometry",
    "LatencyModel",
    "Layer",
    "Prediction",
    "Profile",
    "ProfileError",
    "ProfileMismatchWarning",
    "collect_layers",
    "device_fingerprint",
    "device_slug",
]
