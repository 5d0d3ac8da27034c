"""Where edgeprune finds things: shipped package data, the per-user folder, and data sets.

Nothing here depends on the current directory or on a source checkout, except the data-set default
``../shared/data`` that a development checkout uses.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from edgeprune.errors import DataNotFoundError

ENV_VAR = "EDGEPRUNE_DATA"
HOME_ENV = "EDGEPRUNE_HOME"


def shipped_dir(kind: str) -> Path:
    """A folder of package data shipped in the wheel: ``targets`` or ``profiles``."""
    return Path(str(resources.files("edgeprune.resources") / kind))


def home_dir() -> Path:
    """The per-user folder for what a user measures or adds: ``$EDGEPRUNE_HOME``, else the platform's user
    data folder (``~/.local/share/edgeprune`` on Linux)."""
    explicit = os.environ.get(HOME_ENV)
    if explicit:
        return Path(explicit).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("edgeprune", appauthor=False))


def user_dir(kind: str) -> Path:
    """``home_dir()/kind`` (``profiles``, ``targets``); not created until something is written there."""
    return home_dir() / kind


def data_root(explicit: str | os.PathLike | None = None) -> Path | None:
    """The data folder to use, or None when none of the known places exists.

    Order: the explicit argument (must exist), ``$EDGEPRUNE_DATA`` (must exist), then ``../shared/data``
    relative to the working directory and to the source checkout.
    """
    for source, value in (("argument", explicit), (ENV_VAR, os.environ.get(ENV_VAR))):
        if value:
            path = Path(value).expanduser()
            if not path.is_dir():
                raise DataNotFoundError(f"data folder from {source} does not exist: {path}")
            return path
    for base in (Path.cwd(), Path(__file__).resolve().parents[1]):
        candidate = base.parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return None


def looked_in() -> str:
    """A human-readable list of the places :func:`data_root` searches."""
    return f"--data-dir, ${ENV_VAR}, ../shared/data (from {Path.cwd()} and from the edgeprune checkout)"
