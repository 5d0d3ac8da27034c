"""Stage 1: trace a model once and find its channel groups."""

from edgeprune.graph.declared import register_layer
from edgeprune.graph.errors import GraphBuildError, UnsupportedOpError, UntraceableError
from edgeprune.graph.groups import ChannelGraph, ChannelGroup, Member, Unit
from edgeprune.graph.trace import build_graph, tree_tensors

__all__ = [
    "ChannelGraph", "ChannelGroup", "GraphBuildError", "Member", "Unit", "UnsupportedOpError", "UntraceableError",
    "build_graph", "register_layer", "tree_tensors",
]  # fmt: skip
