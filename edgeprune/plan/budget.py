"""What a plan must meet and keep to: the budget (latency, MACs or parameters) and the per-group constraints."""

from __future__ import annotations

from dataclasses import dataclass

from edgeprune.errors import EdgepruneError


class BudgetError(EdgepruneError, ValueError):
    """A budget that cannot be parsed or cannot be reached under the constraints."""


@dataclass(frozen=True)
class Budget:
    """A limit on latency, MACs or parameters: relative to the unpruned model (``0.5x``) or absolute."""

    kind: str  # "latency" | "macs" | "params"
    value: float
    relative: bool

    @classmethod
    def parse(cls, kind: str, text: str) -> Budget:
        """``0.5x`` (fraction of the dense model), ``3.2ms`` (latency), or a plain number in the cost's unit."""
        raw = str(text).strip().lower()
        relative = raw.endswith("x")
        number = raw[:-1] if relative else raw.removesuffix("ms") if kind == "latency" else raw
        try:
            value = float(number)
        except ValueError:
            raise BudgetError(f"cannot read {kind} budget {text!r}: write e.g. 0.5x"
                              + (" or 3.2ms" if kind == "latency" else "")) from None
        if not value > 0 or (relative and value > 1):
            raise BudgetError(f"{kind} budget {text!r} must be positive" + (" and at most 1x" if relative else ""))
        return cls(kind, value, relative)

    def resolve(self, dense: float) -> float:
        return self.value * dense if self.relative else self.value

    def __str__(self) -> str:
        return f"{self.kind} {self.value:g}x" if self.relative else f"{self.kind} {self.value:g}"


@dataclass(frozen=True)
class PlanConstraints:
    """Per-group limits: channels kept, fraction removed, step size, and snapping to latency stairs."""

    min_channels: int = 1
    max_removed: float = 0.75  # of each group; the OICSR paper caps it at 0.5
    # Of groups that several layers write to (residual streams). Measured on ResNet-56 / cpu-ort at one
    # predicted latency (tools/bench_streams.py): cutting streams cost 16 points of accuracy after the same
    # fine-tune, for a measured speed within this VM's noise of keeping them whole.
    max_removed_shared: float = 0.0
    step: float = 1 / 16  # fraction of a group removed per greedy step where no stair says otherwise
    snap: bool = True  # only stop at widths the runtime computes efficiently (the blocking below, any ranking)
    align: int = 1  # with snap: widths are multiples (or divisors) of this; 1 = the profile's staircase (latency)
    normalize: bool = True  # divide scores by their group's mean, so groups compare by relative importance
    # ...and by the group's width to this power: at 0 a channel counts alike in any group, so halving a wide
    # group costs far more than halving a narrow one; at 1 halving any group costs alike. Above 0 plans ran
    # faster on some models and slower on others (docs/concepts/planner.md), so 0 stays.
    width_power: float = 0.0
    # A group that is the whole inside of a residual branch may also go to width 0, whatever the limits above:
    # the branch is removed and its layers stop running (edgeprune.graph.branches).
    remove_branches: bool = False

    @property
    def blocking(self) -> int | None:
        """The channel blocking every width keeps to (its multiples or divisors), if any."""
        return self.align if self.snap and self.align > 1 else None
