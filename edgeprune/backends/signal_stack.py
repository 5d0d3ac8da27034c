"""Keeping the calling thread's alternate signal stack where it was across a runtime call.

OpenVINO's CPU plugin points the thread's alternate signal stack (``sigaltstack``) at memory of its own when
it compiles a model, and can leave it pointing there after that memory is gone. Python installs its signal
handlers to run on that stack, so the next signal the process handles (the SIGCHLD of a finished data-loader
worker, say) crashes it (seen here: OpenVINO int8 validation, then training with loader workers in the same
process). :func:`kept_signal_stack` puts back the stack that was in place before the call. Linux only; a
no-op elsewhere.
"""

from __future__ import annotations

import contextlib
import ctypes
import sys
from collections.abc import Iterator


class _Stack(ctypes.Structure):  # Linux's stack_t
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


def _current() -> _Stack:
    now = _Stack()
    ctypes.CDLL(None).sigaltstack(None, ctypes.byref(now))
    return now


def current_signal_stack() -> tuple[int | None, int, int] | None:
    """(address, flags, size) of this thread's alternate signal stack; None off Linux."""
    if not sys.platform.startswith("linux"):
        return None
    now = _current()
    return now.ss_sp, now.ss_flags, now.ss_size


@contextlib.contextmanager
def kept_signal_stack() -> Iterator[None]:
    """Run the block, then set this thread's alternate signal stack back to the one it had before."""
    if not sys.platform.startswith("linux"):
        yield
        return
    before = _current()
    try:
        yield
    finally:
        before.ss_flags &= ~1  # SS_ONSTACK is a state, not a setting (it is never set outside a handler)
        ctypes.CDLL(None).sigaltstack(ctypes.byref(before), None)
