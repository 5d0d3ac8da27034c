"""The one base class of every error that means "the input is wrong", not "edgeprune is broken".

The command line catches :class:`EdgepruneError` once, prints its message and exits with its ``exit_code``;
any other exception is a bug and keeps its traceback. Each stage's error classes derive from it (and keep
their older built-in base, so ``except ValueError`` in a user's code still works).
"""

from __future__ import annotations


class EdgepruneError(Exception):
    """A problem with the user's input, files or machine, reported as one line and a non-zero exit."""

    exit_code = 1


class DataNotFoundError(EdgepruneError, FileNotFoundError):
    """A data set, data folder or weights file that is not where it was looked for."""
