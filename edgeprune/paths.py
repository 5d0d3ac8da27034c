"""Where edgeprune finds data and weights: an explicit path, $EDGEPRUNE_DATA, or ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "EDGEPRUNE_DATA"


def data_root(explicit: str | os.PathLike | None = None) -> Path | None:
    """The data folder to use, or None when none of the known places exists.

    Order: the explicit argument (must exist), ``$EDGEPRUNE_DATA`` (must exist), then ``../shared/data``
    relative to the working directory and to the source checkout.
    """
    for source, value in (("argument", explicit), (ENV_VAR, os.environ.get(ENV_VAR))):
        if value:
            path = Path(value).expanduser()
            if not path.is_dir():
                raise FileNotFoundError(f"data folder from {source} does not exist: {path}")
            return path
    for base in (Path.cwd(), Path(__file__).resolve().parents[1]):
        candidate = base.parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return None


def looked_in() -> str:
    """A human-readable list of the places :func:`data_root` searches."""
    return f"--data-dir, ${ENV_VAR}, ../shared/data (from {Path.cwd()} and from the edgeprune checkout)"
