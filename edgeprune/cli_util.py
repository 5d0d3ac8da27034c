"""Helpers shared by the click commands."""

from __future__ import annotations

import click

from edgeprune.graph import GraphBuildError
from edgeprune.models import UnknownModelError
from edgeprune.prune import ArchSpecError, PlanError

# Errors that mean "your input is wrong", reported as one line and exit code 1.
_DOMAIN_ERRORS = (GraphBuildError, PlanError, ArchSpecError, UnknownModelError, FileNotFoundError, ValueError)


def _fail(exc: Exception) -> None:
    raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc
