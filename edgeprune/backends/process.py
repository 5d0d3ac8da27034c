"""Running Python in a fresh process of this interpreter: what a measurement or a search must not leave in the
calling process (a runtime's memory, ExecuTorch's one-per-process threadpool) is gone when it exits."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading


def _default_sigchld():
    """Set SIGCHLD to its default (main thread, POSIX only); returns the handler to restore, or None."""
    if not hasattr(signal, "SIGCHLD") or threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGCHLD, signal.SIG_DFL)


def run_python(code: str, timeout: float | None = None) -> subprocess.CompletedProcess:
    """Run ``code`` with ``python -c`` in a fresh process and wait for it; its output is captured as text. The
    caller reads its exit status."""
    # a SIGCHLD handler left by a torch DataLoader of this process would read the child's exit as a worker of
    # its own failing; that exit concerns nobody but subprocess.run
    previous = _default_sigchld()
    try:
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    finally:
        if previous is not None:
            signal.signal(signal.SIGCHLD, previous)
