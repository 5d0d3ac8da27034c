"""Memory of a model on a backend: a fresh process loads it and runs it once, and reports its resident memory."""

from __future__ import annotations

import json

from edgeprune.backends.base import BackendError
from edgeprune.backends.process import run_python
from edgeprune.targets import Target


def target_fields(target: Target) -> dict:
    """The target's settings as a JSON-able dict (what target_from_dict takes back)."""
    out = {k: v for k, v in vars(target).items() if k not in ("name", "source")}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


def target_code(target: Target) -> str:
    """Python source that rebuilds ``target`` as ``t`` in the probe process."""
    return (f"from edgeprune.targets import target_from_dict\n"
            f"t = target_from_dict({target.name!r}, json.loads({json.dumps(target_fields(target))!r}))\n")  # fmt: skip


def current_rss_mb() -> float:
    """Resident set size now (Linux /proc; falls back to the peak elsewhere)."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def probe_memory(imports: str, load_and_run: str, target: Target) -> dict:
    """In a fresh process: ``imports`` (the runtime), then ``load_and_run`` (Python source that loads the model
    and runs it once, with the target as ``t``). Resident memory before and after loading (MB), the process
    peak, and ``runtime_mb``, the growth from loading."""
    code = ("import json, resource\nimport numpy as np\nfrom edgeprune.backends.memory import current_rss_mb\n"
            + imports + "\n" + target_code(target) + "before = current_rss_mb()\n" + load_and_run
            + "\npeak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
            'print(json.dumps({"rss_before_mb": before, "rss_after_mb": current_rss_mb(), "peak_rss_mb": peak}))\n')
    proc = run_python(code, timeout=600)
    if proc.returncode != 0:
        raise BackendError(f"memory probe failed: {proc.stderr.strip().splitlines()[-1:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # Growth of resident memory from loading the model and running it once (the model's cost); the process
    # peak also counts what importing the runtime itself touched.
    out["runtime_mb"] = max(0.0, out["rss_after_mb"] - out["rss_before_mb"])
    return out
