"""The one base class of every error that means "the input is wrong", not "edgeprune is broken".

The command line catches :class:`EdgepruneError` once, prints its message and exits with its ``exit_code``;
any other exception is a bug and keeps its traceback. Each stage's error classes derive from it (and keep
their older built-in base, so ``except ValueError`` in a user's code still works).
"""

from __future__ import annotations

import importlib
from types import ModuleType


class EdgepruneError(Exception):
    """A problem with the user's input, files or machine, reported as one line and a non-zero exit."""

    exit_code = 1


class InputError(EdgepruneError, ValueError):
    """A value, option or file content that edgeprune cannot use; the message says which and why."""


class DataError(InputError):
    """A data folder that cannot be trained or evaluated on; the message says what to change."""


class UnknownNameError(EdgepruneError, KeyError):
    """A name that is not registered (a model, regularizer, ...); the message lists the known ones."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class MissingError(EdgepruneError, FileNotFoundError):
    """A file or folder that should exist and does not."""


class OutputExistsError(EdgepruneError, FileExistsError):
    """An output path that already holds something edgeprune will not overwrite."""


class DataNotFoundError(MissingError):
    """A data set, data folder or weights file that is not where it was looked for."""


class MissingExtraError(EdgepruneError, ImportError):
    """An optional dependency that is not installed; the message names the extra that installs it."""


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` of an optional integration, or say which ``edgeprune[extra]`` installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{module} is not installed: install the {extra!r} extra (pip install 'edgeprune[{extra}]')"
        ) from exc
