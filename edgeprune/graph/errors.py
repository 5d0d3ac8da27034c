"""Errors of the graph stage."""

from __future__ import annotations

from edgeprune.errors import EdgepruneError


class GraphBuildError(EdgepruneError, RuntimeError):
    """The model could not be traced or analysed."""


class UnsupportedOpError(GraphBuildError):
    """An op the channel graph does not understand; pass ``freeze_unknown=True`` to freeze around it."""

    def __init__(self, op: str, path: str) -> None:
        self.op, self.path = op, path
        super().__init__(
            f"unsupported op {op} at {path or '<top level>'}: edgeprune cannot tell how it moves channels."
            " Rebuild with freeze_unknown=True (CLI: --freeze-unknown) to keep the channels it touches"
            " unpruned, or map it to a rule in edgeprune.graph.optable."
        )
