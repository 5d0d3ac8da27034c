"""The latency profile artifact (profiles/<target>--<device>.json), plain data: what was measured on a target
and the terms fitted to it. The predictor built on it is :class:`edgeprune.latency.model.LatencyModel`."""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from edgeprune.atomic import atomic_write_text
from edgeprune.errors import EdgepruneError
from edgeprune.kit.collect import fingerprint
from edgeprune.latency.layers import Geometry, Layer
from edgeprune.paths import shipped_dir, user_dir

PROFILE_SCHEMA = "edgeprune.profile/1"


class ProfileError(EdgepruneError, ValueError):
    """A malformed, truncated or mismatching profile."""


class ProfileMismatchWarning(UserWarning):
    """The profile was measured on another device or runtime version."""


def device_fingerprint(backend: str) -> dict:
    """What decides a measurement's validity: CPU model, cores, GPU, runtime versions."""
    fp = fingerprint(backend)
    try:
        import torch

        fp["torch"] = torch.__version__.split("+")[0]
        if torch.cuda.is_available():
            fp["gpu"] = torch.cuda.get_device_name(0)
            fp["cuda"] = torch.version.cuda
    except ImportError:
        pass
    return fp


def device_slug(fp: dict) -> str:
    """Short file-name-safe device name: GPU if any, else CPU model and cores."""
    slug = "".join(c.lower() if c.isalnum() else "-" for c in fp.get("gpu") or fp.get("cpu", "cpu"))
    slug = "-".join(p for p in slug.split("-") if p)[:40]
    return f"{slug}-{fp.get('cores', '?')}c"


@dataclass
class Table:
    """Measured ms over a channel grid: 2-D (cin x cout), or 1-D over c for depthwise/grouped convs.

    ``scan_c``/``scan_ms`` are a dense scan of output channels near the original width (at the largest
    cin): they carry the latency staircase that the coarse grid steps over.
    """

    cin: list[int]
    cout: list[int] | None
    ms: list  # [len(cin)][len(cout)] or [len(cin)]
    spread_pct: list
    scan_c: list[int] | None = None
    scan_ms: list[float] | None = None
    retimed: int = 0  # points the sweep timed a third time because its two passes disagreed
    timed: int = 0  # points the sweep timed (grid and scan); 0 in profiles from before it was recorded
    spikes: int = 0  # points above their neighbours after the passes, timed again beside them

    def grid_lookup(self, cin: int, cout: int) -> tuple[float, bool]:
        """Bilinear (or linear) interpolation on the coarse grid, clamped, with an out-of-range flag."""
        ms = np.asarray(self.ms, dtype=np.float64)
        x, out_x = _interp_index(self.cin, cin)
        if self.cout is None:
            return float(_lerp1(ms, x)), out_x
        y, out_y = _interp_index(self.cout, cout)
        i, fx = int(np.floor(x)), x - np.floor(x)
        j, fy = int(np.floor(y)), y - np.floor(y)
        i1, j1 = min(i + 1, len(self.cin) - 1), min(j + 1, len(self.cout) - 1)
        top = ms[i, j] * (1 - fy) + ms[i, j1] * fy
        bottom = ms[i1, j] * (1 - fy) + ms[i1, j1] * fy
        return float(top * (1 - fx) + bottom * fx), out_x or out_y

    def lookup(self, cin: int, cout: int, use_scan: bool = True, block: int = 1) -> tuple[float, bool]:
        """Interpolated ms, corrected by the dense scan where it reaches; flags extrapolation.

        ``block`` rounds channel counts up to the kernel's channel blocking (a width between two blocks
        costs what the next block costs), never past the largest measured width.
        """
        if block > 1:
            top_in, top_out = self.cin[-1], (self.cout or self.cin)[-1]
            cin = min(-(-cin // block) * block, max(cin, top_in))
            cout = min(-(-cout // block) * block, max(cout, top_out))
        ms, outside = self.grid_lookup(cin, cout)
        c = cin if self.cout is None else cout
        if use_scan and self.scan_c and self.scan_c[0] <= c <= self.scan_c[-1]:
            ref, _ = self.grid_lookup(self.cin[-1], c)
            if ref > 0:
                ms *= float(np.interp(c, self.scan_c, self.scan_ms)) / ref
        return ms, outside

    def efficient_widths(self, tol_pct: float = 3.0) -> list[int]:
        """Scanned widths right before latency steps up by more than ``tol_pct``: widths worth keeping."""
        if not self.scan_c:
            return []
        c, ms = self.scan_c, self.scan_ms
        steps = [c[i] for i in range(len(c) - 1) if ms[i + 1] > ms[i] * (1 + tol_pct / 100)]
        return sorted(set(steps + [c[-1]]))


def _interp_index(axis: list[int], value: int) -> tuple[float, bool]:
    """Fractional position of ``value`` on a sorted axis; clamped, with an out-of-range flag."""
    if value <= axis[0] or value >= axis[-1]:
        outside = value < axis[0] or value > axis[-1]
        return (0.0 if value <= axis[0] else float(len(axis) - 1)), outside
    return float(np.interp(value, axis, np.arange(len(axis)))), False


def _lerp1(ms: np.ndarray, x: float) -> float:
    i = int(np.floor(x))
    i1 = min(i + 1, len(ms) - 1)
    return ms[i] * (1 - (x - i)) + ms[i1] * (x - i)


@dataclass
class Calibration:
    """measured_ms ≈ scale * sum(layer ms) + ms_per_mb * sum(activation MB) + ms_per_mmac * sum(MMACs)
    + offset_ms, fitted on end-to-end runs of one model; ``tables`` False: the layer tables left out (scale 1,
    they explained the runs worse than the activations alone). How a prediction applies it:
    :class:`edgeprune.latency.model.LatencyModel`; how it is fitted: :mod:`edgeprune.latency.calibration`."""

    scale: float = 1.0
    offset_ms: float = 0.0
    points: list[dict] = field(default_factory=list)
    ms_per_mb: float = 0.0
    tables: bool = True
    ms_per_mmac: float = 0.0


def _calibration_dict(c: Calibration) -> dict:
    """A calibration as stored; the optional terms only when used, so a line reads as before they existed."""
    skip = {"ms_per_mb", "tables"} if not c.ms_per_mb and c.tables else set()
    skip |= set() if c.ms_per_mmac else {"ms_per_mmac"}
    return {k: v for k, v in vars(c).items() if k not in skip}


def calibration_name(model: str, side: int | None = None) -> str:
    """The key of ``model``'s calibration line at the square input ``side``: the model's name at its registry
    input size (or with no side given), ``name@side`` at another, so lines measured at two sizes coexist."""
    if side is None or not model:
        return model
    from edgeprune.models import get_entry

    try:
        default = get_entry(model).input_size[-1]
    except EdgepruneError:  # a name only the caller knows: no registry size to compare with
        default = None
    return model if side == default else f"{model}@{side}"


def measure_hint(target: str, model: str, side: int | None = None) -> str:
    """The command that measures the tables ``model`` needs on ``target`` (with its input size when it is not
    the registry's: the line and geometries of another size are another model's to the profile)."""
    size = f" --input-size {side}" if calibration_name(model, side) != model else ""
    return f"edgeprune profile measure {target} --model {model or 'MODEL'}{size}"


@dataclass(frozen=True)
class ProfileSettings:
    """How a profile is measured and its terms fitted; the defaults make the profiles edgeprune ships. What
    decides a table's reuse is stamped into the profile file (``latency.profiler.profile_settings``)."""

    grid_fractions: tuple[float, ...] = (0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0)  # of each layer's widths
    # micro-models: many short rounds (see targets/cpu-ort.toml)
    micro_timing: dict = field(default_factory=lambda: {"warmup": 5, "repeats": 3, "rounds": 15})
    scan: dict = field(default_factory=lambda: {"span": 64, "step": 2})  # dense scan below the top width: the staircase
    # every width and calibration run timed in two passes, a third time where they differ by more than tolerance
    sweep: dict = field(default_factory=lambda: {"tolerance": 0.1, "passes": 2})
    # uniform plans the calibration line is fitted on; 0.75 anchors it at small widths
    calibration_ratios: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75)
    calibration_random: int = 6  # random plans per model (seeded apart from the check's), as odd widths cost extra
    # random plans on the target's channel blocking, as the planner's plans are: the line is fitted where they lie
    calibration_blocked: int = 4
    # MACs budgets at which the planner's own plan is timed too (when a planner is passed): the plan it picks is
    # the one the tables flatter most, so the line must be fitted where such plans lie
    calibration_planned: tuple[float, ...] = (0.7, 0.45, 0.3)
    # in-network fits: how far apart two sessions of the dense model may time before the fit is refused
    control_tolerance: float = 0.03


DEFAULT_SETTINGS = ProfileSettings()


@dataclass
class Profile:
    target: dict
    device: dict
    settings: dict
    tables: dict[str, Table]
    calibration: dict[str, Calibration] = field(default_factory=dict)
    use_scan: bool = True  # apply the dense staircase scans in lookups (see Table.lookup)
    channel_block: int = 1  # round widths up to this blocking in lookups; chosen by calibration
    # What a layer whose channels are off the runtime's blocking costs beyond its table entry, inside a
    # network: {"align": 8|16, "ms_per_mb": .., "ms_per_layer": ..}; fitted by calibration ({}: none).
    misalign: dict = field(default_factory=dict)
    # The lookup each calibrated model explains its own runs best with, by calibration name:
    # {name: {"channel_block", "use_scan", "misalign"}}; a model without an entry takes the fields above.
    lookups: dict[str, dict] = field(default_factory=dict)
    # How much of a geometry's table saving from narrower channels shows up inside one model, fitted on
    # in-network variants (latency/innet.py): {model: {"scales": {key: s}, "dense": {path: [key, cin, cout]}}}.
    # In that model a layer costs T(dense) + s * (T(c) - T(dense)): its saving from its own dense widths,
    # scaled. Per model, since another model's layers of the same geometry sit at other widths; a key
    # absent here counts with s = 1.
    width_scale: dict[str, dict] = field(default_factory=dict)
    # How much of a removed layer's predicted cost removing its residual branch saves inside one model,
    # measured (latency/removal.py): {model: {key: s}}; the layer leaves (1 - s) of its dense cost behind.
    # A key absent here counts with s = 1 (the removed layer's whole predicted cost is saved).
    removal_scale: dict[str, dict[str, float]] = field(default_factory=dict)

    def with_width_scales(self, model: str, scales: dict[str, float], dense: list[Layer]) -> Profile:
        """A copy with ``model``'s fitted width scales (added to its earlier ones) and its dense layers' widths."""
        old = self.width_scale.get(model, {}).get("scales", {})
        entry = {"scales": {**old, **scales}, "dense": {x.path: x.row for x in dense}}
        return replace(self, width_scale={**self.width_scale, model: entry})

    def lookup_for(self, name: str) -> tuple[int, bool, dict]:
        """(channel block, staircase scans, misalignment term) for the calibration line ``name``."""
        own = self.lookups.get(name)
        if own is None:
            return self.channel_block, self.use_scan, self.misalign
        return own["channel_block"], own["use_scan"], own["misalign"]

    def model_layers(self, model: str, point: dict) -> list[Layer]:
        """A calibration point's layers, named by the model's layer paths when the fit recorded them (so the
        in-network correction applies to them as to the model's own layers)."""
        rows = point["layers"]
        dense = list(self.width_scale.get(model, {}).get("dense", {}).items())
        same = len(dense) == len(rows) and all(d[1][0] == r[0] for d, r in zip(dense, rows))
        return [Layer(dense[j][0] if same else f"l{j}", Geometry.from_key(k), ci, co)
                for j, (k, ci, co) in enumerate(rows)]  # fmt: skip

    def disputed(self) -> tuple[int, int, int]:
        """(points timed a third time, spikes timed again, points timed) over the tables that record them: how
        often two passes of the sweep were further apart than its tolerance, and how many widths stood above
        their neighbours. A busy or throttled machine shows here first."""
        counted = [t for t in self.tables.values() if t.timed]
        return sum(t.retimed for t in counted), sum(t.spikes for t in counted), sum(t.timed for t in counted)

    # -- file format
    def to_dict(self) -> dict:
        return {
            "schema": PROFILE_SCHEMA,
            "target": self.target,
            "device": self.device,
            "settings": self.settings,
            "tables": {k: vars(t) for k, t in sorted(self.tables.items())},
            "calibration": {k: _calibration_dict(c) for k, c in sorted(self.calibration.items())},
            "use_scan": self.use_scan,
            "channel_block": self.channel_block,
            "misalign": self.misalign,
            "lookups": dict(sorted(self.lookups.items())),
            "width_scale": self.width_scale,
            "removal_scale": self.removal_scale,
        }

    def missing(self, layers: list[Layer]) -> list[str]:
        """The layer geometries of ``layers`` that the profile holds no table for, sorted."""
        return sorted({x.geometry.key for x in layers} - set(self.tables))

    def save(self, path: str | os.PathLike) -> None:
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1))

    @classmethod
    def from_dict(cls, data: dict, source: str = "<dict>") -> Profile:
        if not isinstance(data, dict) or data.get("schema") != PROFILE_SCHEMA:
            raise ProfileError(f"{source}: not an edgeprune profile (expected schema {PROFILE_SCHEMA!r})")
        try:
            tables = {}
            for key, t in data["tables"].items():
                Geometry.from_key(key)
                table = Table(list(t["cin"]), None if t["cout"] is None else list(t["cout"]), t["ms"],
                              t["spread_pct"], t.get("scan_c"), t.get("scan_ms"), int(t.get("retimed", 0)),
                              int(t.get("timed", 0)), int(t.get("spikes", 0)))  # fmt: skip
                shape = (len(table.cin),) if table.cout is None else (len(table.cin), len(table.cout))
                if np.asarray(table.ms, dtype=np.float64).shape != shape or sorted(table.cin) != table.cin:
                    raise ProfileError(f"{source}: table {key} has ms of the wrong shape (expected {shape})")
                tables[key] = table
            cal = {k: Calibration(**c) for k, c in data.get("calibration", {}).items()}
            if any(not isinstance(c.tables, bool) for c in cal.values()):
                raise ProfileError(f"{source}: a calibration's tables must be true or false")
            use_scan, block = bool(data.get("use_scan", True)), int(data.get("channel_block", 1))
            misalign = _read_misalign(data.get("misalign"), f"{source}: misalign")
            lookups = {str(k): _read_lookup(v, f"{source}: lookups[{k!r}]")
                       for k, v in (data.get("lookups") or {}).items()}  # fmt: skip
            width_scale = _read_width_scale(data.get("width_scale") or {}, tables, source)
            removal = {str(m): {str(k): float(v) for k, v in scales.items()}
                       for m, scales in (data.get("removal_scale") or {}).items()}  # fmt: skip
            if any(set(scales) - set(tables) for scales in removal.values()):
                raise ProfileError(f"{source}: removal_scale names geometries without a table")
            return cls(dict(data["target"]), dict(data["device"]), dict(data["settings"]), tables, cal, use_scan,
                       block, misalign, lookups, width_scale, removal)  # fmt: skip
        except ProfileError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise ProfileError(f"{source}: malformed profile ({type(exc).__name__}: {exc})") from exc

    @classmethod
    def load(cls, path: str | os.PathLike, strict: bool = False) -> Profile:
        """Load and validate; warns (or, with ``strict``, raises) when measured on another device/runtime."""
        try:
            data = json.loads(Path(path).read_text())
        except json.JSONDecodeError as exc:
            raise ProfileError(f"{path}: not valid JSON (truncated or corrupt): {exc}") from exc
        except OSError as exc:
            raise ProfileError(f"cannot read profile {path}: {exc}") from exc
        profile = cls.from_dict(data, str(path))
        mismatch = profile.device_mismatch()
        if mismatch:
            hint = measure_hint(profile.target.get("name", "TARGET"), "")
            message = f"{path} was measured elsewhere: {mismatch}; `{hint}` measures this device"
            if strict:
                raise ProfileError(message)
            warnings.warn(message, ProfileMismatchWarning, stacklevel=2)
        return profile

    def device_mismatch(self, other: dict | None = None, name: str = "here") -> str:
        """How the profile's device differs from ``other`` (a fingerprint, called ``name``; default: this one)."""
        here = other if other is not None else device_fingerprint(self.target.get("backend", ""))
        diffs = [f"{k}: profile {self.device.get(k)!r} vs {name} {here.get(k)!r}"
                 for k in ("cpu", "cores", "gpu", "onnxruntime", "cuda") if self.device.get(k) != here.get(k)]
        diffs += [f"{what}: profile {self.device[k]!r} vs {name} {here[k]!r}"  # older profiles lack these two
                  for k, what in (("isa", "CPU features"), ("cpu_generation", "CPU generation"))
                  if k in self.device and k in here and self.device[k] != here[k]]  # fmt: skip
        return "; ".join(diffs)


def _read_misalign(raw, where: str) -> dict:
    misalign = dict(raw or {})
    if misalign and not {"align", "ms_per_mb", "ms_per_layer"} <= set(misalign):
        raise ProfileError(f"{where} needs align, ms_per_mb and ms_per_layer")
    return misalign


def _read_lookup(raw: dict, where: str) -> dict:
    if not isinstance(raw, dict) or not {"channel_block", "use_scan"} <= set(raw):
        raise ProfileError(f"{where} needs channel_block and use_scan")
    return {"channel_block": int(raw["channel_block"]), "use_scan": bool(raw["use_scan"]),
            "misalign": _read_misalign(raw.get("misalign"), f"{where}'s misalign")}  # fmt: skip


def _read_width_scale(raw: dict, tables: dict, source: str) -> dict[str, dict]:
    out = {}
    for model, entry in raw.items():
        if not isinstance(entry, dict) or not {"scales", "dense"} <= set(entry):
            raise ProfileError(
                f"{source}: width_scale[{model!r}] is not a per-model entry with scales and dense widths (a "
                "profile from before per-model in-network fits): fit them again with `edgeprune profile TARGET "
                "--model M --in-network`"
            )
        scales = {str(k): float(v) for k, v in entry["scales"].items()}
        if set(scales) - set(tables):
            raise ProfileError(f"{source}: width_scale[{model!r}] names geometries without a table")
        dense = {str(p): [str(k), int(ci), int(co)] for p, (k, ci, co) in entry["dense"].items()}
        out[str(model)] = {"scales": scales, "dense": dense}
    return out


PROFILES_ENV = "EDGEPRUNE_PROFILES"


def profile_dirs() -> list[Path]:
    """Folders searched for profiles: ``$EDGEPRUNE_PROFILES``, the user's folder (where ``profile measure``
    writes), then the profiles shipped with edgeprune."""
    dirs = [Path(os.environ[PROFILES_ENV])] if os.environ.get(PROFILES_ENV) else []
    dirs += [user_dir("profiles"), shipped_dir("profiles")]
    return [d for i, d in enumerate(dirs) if d.is_dir() and d not in dirs[:i]]


def default_profile_path(target_name: str, device: dict) -> Path:
    """Where a profile measured (or imported) here is written unless a path is given: the user's folder."""
    return user_dir("profiles") / f"{target_name}--{device_slug(device)}.json"


def find_profile(target_name: str, backend: str) -> Path:
    """This device's profile of a target, else the first one of that target measured elsewhere (it warns
    when loaded); :class:`ProfileError` saying how to make one when there is none."""
    exact = f"{target_name}--{device_slug(device_fingerprint(backend))}.json"
    for d in profile_dirs():
        if (d / exact).is_file():
            return d / exact
    for d in profile_dirs():
        found = sorted(p for p in d.glob(f"{target_name}--*.json") if not p.name.endswith(".partial.json"))
        if found:
            return found[0]
    raise ProfileError(
        f"no latency profile for target {target_name!r} (looked for {exact} in "
        f"{', '.join(str(d) for d in profile_dirs())}): "
        f"run `edgeprune profile measure {target_name} --model MODEL` first, or pass --profile FILE"
    )
