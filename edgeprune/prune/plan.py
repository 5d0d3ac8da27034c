"""The Plan artifact: which channels (units) of each group to keep."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from edgeprune.atomic import atomic_write_text
from edgeprune.errors import EdgepruneError
from edgeprune.graph.groups import ChannelGraph

PLAN_SCHEMA = "edgeprune.plan/1"


class PlanError(EdgepruneError, ValueError):
    """A plan that does not fit the model it is applied to."""


@dataclass
class Plan:
    """Kept unit indices per group id; groups not listed keep every unit."""

    model: str
    fingerprint: str
    keep: dict[int, list[int]] = field(default_factory=dict)

    def removed(self, graph: ChannelGraph) -> dict[int, list[int]]:
        """Group id -> removed unit indices."""
        out = {}
        for gid, kept in self.keep.items():
            gone = sorted(set(range(graph.group(gid).size)) - set(kept))
            if gone:
                out[gid] = gone
        return out

    def validate(self, graph: ChannelGraph) -> None:
        """Raise :class:`PlanError` naming the first problem; return quietly when the plan fits."""
        if self.fingerprint != graph.fingerprint:
            raise PlanError(
                f"plan is for model {self.model!r} with fingerprint {self.fingerprint}, but the graph of "
                f"{graph.model_name!r} has fingerprint {graph.fingerprint}: build the plan from this model"
            )
        for gid, kept in self.keep.items():
            if not isinstance(gid, int) or not 0 <= gid < len(graph.groups):
                raise PlanError(f"plan names group {gid!r}; the graph has groups 0..{len(graph.groups) - 1}")
            group = graph.groups[gid]
            if not kept and gid not in graph.branches:
                raise PlanError(f"plan empties group {gid} entirely: only a group that is a whole residual branch "
                                "may be emptied (keep at least one channel)")
            if len(set(kept)) != len(kept):
                raise PlanError(f"plan keeps a channel of group {gid} twice")
            bad = [i for i in kept if not isinstance(i, int) or not 0 <= i < group.size]
            if bad:
                raise PlanError(f"plan index {bad[0]!r} is out of range for group {gid} of size {group.size}")
            gone = set(range(group.size)) - set(kept)
            frozen = [i for i in gone if group.units[i].frozen]
            if frozen:
                why = group.units[frozen[0]].frozen
                raise PlanError(f"plan removes frozen channel {frozen[0]} of group {gid} ({why})")

    def to_dict(self) -> dict:
        return {
            "schema": PLAN_SCHEMA,
            "model": self.model,
            "fingerprint": self.fingerprint,
            "groups": {str(g): sorted(k) for g, k in sorted(self.keep.items())},
        }

    @classmethod
    def from_dict(cls, data: dict) -> Plan:
        if not isinstance(data, dict) or data.get("schema") != PLAN_SCHEMA:
            raise PlanError(f"not an edgeprune plan (expected schema {PLAN_SCHEMA!r})")
        try:
            keep = {int(g): [int(i) for i in kept] for g, kept in data["groups"].items()}
            return cls(str(data["model"]), str(data["fingerprint"]), keep)
        except (KeyError, TypeError, ValueError) as exc:
            raise PlanError(f"malformed plan: {exc}") from exc

    def save(self, path: str | os.PathLike) -> None:
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str | os.PathLike) -> Plan:
        try:
            data = json.loads(Path(path).read_text())
        except json.JSONDecodeError as exc:
            raise PlanError(f"{path}: not valid JSON ({exc})") from exc
        return cls.from_dict(data)
