"""What a planner returns: the plan, the widths it gives every group, and what it predicted for them."""

from __future__ import annotations

from dataclasses import dataclass, field

from edgeprune.backends.int8_layers import fp32_text
from edgeprune.plan.budget import Budget
from edgeprune.prune.plan import Plan


@dataclass
class GroupWidth:
    group: int
    size: int
    kept: int
    minimum: int
    layers: str


def compared_lines(compared: dict) -> list[str]:
    """Markdown lines of the plan shapes a plan was chosen from (plan/candidates.py)."""
    timed = compared.get("by", "measured") == "measured"
    priced = timed or any(r["predicted"] is not None for r in compared["plans"])
    how = "timed on the target" if timed else "priced by the profile" if priced else "not priced, no profile tables"
    lines = [f"- plan shapes {how} (kept: {compared['chosen']}):"]
    for r in compared["plans"]:
        if timed:
            twin = f", the same plan as {r['same_as']}" if r["same_as"] else ""
            lines.append(f"  - {r['shape']}: {r['measured']:.3f}x of the unpruned latency "
                         f"({r['low']:.3f}-{r['high']:.3f}), MACs {r['macs']:.3f}x{twin}")  # fmt: skip
        else:
            ratio = r["predicted"]
            predicted = "not priced" if ratio is None else f"predicted {ratio:.3f}x of the unpruned latency"
            lines.append(f"  - {r['shape']}: {predicted}, MACs {r['macs']:.3f}x")
    lines += [f"  - {k}: no plan ({v})" for k, v in compared["skipped"].items()]
    if compared.get("faster_than_unpruned") is False:  # set by candidates.compared_summary for timed shapes
        kept = next(r for r in compared["plans"] if r["shape"] == compared["chosen"])
        lines.append(f"- note: no plan shape ran faster than the unpruned model on the target (the kept one ran "
                     f"{kept['measured']:.3f}x of its latency): cutting channels to this budget does not pay here. "
                     "Removing whole blocks (--remove-branches) may; `edgeprune validate` times it on the device")
    return lines


def int8_layers_line(chosen: dict) -> str:
    """What a plan on an int8 target with ``int8_layers = "measured"`` was timed or priced with."""
    priced = "the profile priced every layer in int8"
    if not chosen["timed"]:
        return (f"note: {priced}, and no plan was timed on the target; the model ships with the layers that run "
                "faster in fp32 left in float (`edgeprune validate` measures which, and times it so)")
    if chosen["precision"] != "int8":
        return (f"timed as it ships: every layer ran faster in fp32 on the unpruned model, so the plans were timed "
                f"unquantized ({priced})")
    return f"timed as it ships: {fp32_text(chosen)} left in fp32, measured on the unpruned model ({priced})"


@dataclass
class PlanResult:
    """The plan with what the planner predicted for it."""

    plan: Plan
    budget: Budget
    ranked_by: str
    dense: dict[str, float]  # cost kind -> unpruned total
    pruned: dict[str, float]  # cost kind -> total under the plan
    widths: list[GroupWidth]
    steps: int
    extrapolated: list[str] = field(default_factory=list)
    minimum: float | None = None  # the budget's metric with every group at its minimum width (reachable minimum)
    measured: dict | None = None  # the plan timed on the target while planning (prune/measured.py), with its rounds
    compared: dict | None = None  # the plan shapes, timed or priced, it was chosen from (plan/candidates.py)
    note: str = ""  # why the plan was ranked as it was, when that was not what was asked (plan/run.py)
    # the plan's table sum and the lowest calibration run's (each over dense) and the predicted latency ratio,
    # when the plan lies well below every run the profile's calibration line was fitted on (LatencyModel.knee)
    beyond_calibration: dict | None = None
    # on an int8 target with int8_layers = "measured": whether the plans were timed as they ship, with the layers
    # measured faster in fp32 on the unpruned model left in float (plan/run.py), or only priced, every layer int8
    int8_layers: dict | None = None

    def to_dict(self) -> dict:
        return {
            "schema": "edgeprune.planresult/1",
            "budget": str(self.budget), "ranked_by": self.ranked_by, "steps": self.steps,
            "dense": self.dense, "pruned": self.pruned,
            "ratio": {k: self.pruned[k] / self.dense[k] for k in self.dense if self.dense[k]},
            "groups": [vars(w) for w in self.widths], "extrapolated": self.extrapolated,
            "reachable_minimum": self.minimum,
            **({"measured": self.measured} if self.measured else {}),
            **({"compared": self.compared} if self.compared else {}),
            **({"note": self.note} if self.note else {}),
            **({"beyond_calibration": self.beyond_calibration} if self.beyond_calibration else {}),
            **({"int8_layers": self.int8_layers} if self.int8_layers else {}),
        }  # fmt: skip

    def table(self) -> str:
        """Markdown: the width of every group the plan changes, then the totals."""
        lines = ["| group | width | kept | layers |", "|---:|---:|---:|---|"]
        for w in self.widths:
            if w.kept < w.size:
                lines.append(f"| {w.group} | {w.size} → {w.kept} | {100 * w.kept / w.size:.0f} % | {w.layers} |")
        lines.append("")
        for kind, dense in self.dense.items():
            lines.append(f"- {kind}: {dense:.4g} → {self.pruned[kind]:.4g} ({self.pruned[kind] / dense:.3f}x)")
        if self.measured:
            m, n = self.measured, len(self.measured["rounds"])
            lines.append(f"- measured on the target: {m['dense_ms']:.4g} → {m['ms']:.4g} ms ({m['measured']:.3f}x; "
                         f"planned to {m['planned']:.3f}x predicted, {n} plan{'s' * (n > 1)} timed)")
        if self.compared:
            lines += compared_lines(self.compared)
        if self.note:
            lines.append(f"- note: {self.note}")
        if self.int8_layers:
            lines.append(f"- {int8_layers_line(self.int8_layers)}")
        if self.beyond_calibration:
            b = self.beyond_calibration
            lines.append(f"- note: the plan's layer tables sum to {b['tables']:.3f}x of the unpruned model's, below "
                         f"every run the profile's calibration saw ({b['lowest_calibrated']:.3f}x): its predicted "
                         f"{b['predicted']:.3f}x extrapolates; time the plan (--measured-rounds, --compare-plans "
                         "or `edgeprune validate`)")
        return "\n".join(lines)
