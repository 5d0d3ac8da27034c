"""Stage: structured-sparsity regularizers, all defined on channel groups (one protocol, one registry)."""

from edgeprune.regularize import group_lasso, ssr  # noqa: F401  (registration)
from edgeprune.regularize.base import NoRegularizer, Regularizer, create_regularizer, list_regularizers
from edgeprune.regularize.group_lasso import OICSR, NetworkSlimming, SeparatedGroupLasso
from edgeprune.regularize.hook import HookOrderError, SparsityHook
from edgeprune.regularize.ssr import SSR, SSRL20, SSRL21

__all__ = [
    "OICSR",
    "SSR",
    "SSRL20",
    "SSRL21",
    "NetworkSlimming",
    "NoRegularizer",
    "Regularizer",
    "SeparatedGroupLasso",
    "SparsityHook",
    "HookOrderError",
    "create_regularizer",
    "list_regularizers",
]
