"""Optional integrations with other training frameworks; each imports its framework only when used."""

from __future__ import annotations

import importlib
from types import ModuleType

from edgeprune.errors import EdgepruneError


class MissingExtraError(EdgepruneError, ImportError):
    """An optional dependency that is not installed; the message names the extra that installs it."""


def require(module: str, extra: str) -> ModuleType:
    """Import ``module``, or say which ``edgeprune[extra]`` installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{module} is not installed: install the {extra!r} extra (pip install 'edgeprune[{extra}]')"
        ) from exc
