"""The profile a target uses: found for it, and checked to have been measured running the way it runs."""

from __future__ import annotations

import os

from edgeprune.latency.profile import Profile, ProfileError, find_profile
from edgeprune.targets import Target

RUN_FIELDS = ("backend", "device", "precision", "batch")  # what makes a profile's tables the target's


def run_mismatch(profile: Profile, target: Target) -> str:
    """How ``profile``'s tables were measured otherwise than ``target`` runs ("" when they match): another
    backend, device, precision or batch prices another runtime's layers."""
    differ = [f"{k} {profile.target.get(k)!r} (the target: {getattr(target, k)!r})" for k in RUN_FIELDS
              if k in profile.target and profile.target[k] != getattr(target, k)]  # fmt: skip
    if not differ:
        return ""
    return (f"the profile was measured for target {profile.target.get('name')!r} with {', '.join(differ)}: it "
            f"cannot price {target.name!r} (edgeprune profile measure {target.name} --model MODEL makes one)")


def load_for_target(target: Target, path: str | os.PathLike | None = None, strict: bool = False) -> Profile:
    """``path`` (else :func:`find_profile`'s) loaded for ``target``; :class:`ProfileError` on a
    :func:`run_mismatch`."""
    path = path or find_profile(target.name, target.backend)
    profile = Profile.load(path, strict=strict)
    if mismatch := run_mismatch(profile, target):
        raise ProfileError(f"{path}: {mismatch}")
    return profile
