"""Optional integrations with other training frameworks; each imports its framework only when used."""

from __future__ import annotations

from edgeprune.errors import MissingExtraError, require

__all__ = ["MissingExtraError", "require"]
