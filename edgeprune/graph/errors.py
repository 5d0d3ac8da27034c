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
            " unpruned, or, for a layer of your own, declare how it moves channels:"
            " edgeprune.graph.register_layer(YourLayer, 'elementwise' | 'channelwise' | 'mixing')."
        )


def describe_location(module: tuple[str, str] | None, line: tuple[str, int, str] | None) -> str:
    """" in PATH (Type) at file.py:N `code`", from :func:`edgeprune.graph.fxtrace.locate_failure`'s answer."""
    where = f" in {module[0]} ({module[1]})" if module else ""
    return where + (f" at {line[0]}:{line[1]} `{line[2]}`" if line else "")


class UntraceableError(GraphBuildError):
    """torch.fx cannot trace the model: its code branches on tensor values (shapes and devices are read at the
    example input), or makes calls fx cannot record. Names the module and the source line where tracing stopped."""

    def __init__(self, model: str, module: tuple[str, str] | None, line: tuple[str, int, str] | None, cause: str):
        self.model, self.module, self.line = model, module, line
        first = cause.splitlines()[0] if cause else ""
        inner = module is not None and module[0] != "<top level>"
        hint = ("pass --freeze-unknown (freeze_unknown=True) to keep that module whole and unpruned and prune the "
                "rest, " if inner else "")  # fmt: skip
        super().__init__(
            f"cannot trace {model} with torch.fx{describe_location(module, line)}: {first}. edgeprune follows the "
            "model's forward() "
            f"symbolically (shapes at the input size), so Python control flow on tensor values cannot be followed; "
            f"{hint}move that "
            "code into a leaf module (a torch.nn layer), or use a model variant without it."
        )
