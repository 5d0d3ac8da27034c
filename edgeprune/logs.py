"""Holding back other libraries' log output that says nothing to an edgeprune user."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator


@contextlib.contextmanager
def quiet(logger: str = "") -> Iterator[None]:
    """Raise ``logger`` (the root logger by default) to ERROR for the block: a library's advice and build
    chatter (onnxruntime's pre-processing hint, Ultralytics' layer tables, a deprecation notice logged on
    import) stays out of edgeprune's output, its errors do not."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)
