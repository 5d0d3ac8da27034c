"""Running Python in a fresh process of this interpreter: what a measurement or a search must not leave in the
calling process (a runtime's memory, ExecuTorch's one-per-process threadpool) is gone when it exits."""

from __future__ import annotations

import importlib
import logging
import pickle
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeprune.targets import Target

log = logging.getLogger(__name__)

_in_child = [False]  # this process serves a call: it runs what it is given here, never in another process


def _default_sigchld():
    """Set SIGCHLD to its default (main thread, POSIX only); returns the handler to restore, or None."""
    if not hasattr(signal, "SIGCHLD") or threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGCHLD, signal.SIG_DFL)


def run_python(code: str, timeout: float | None = None, echo: bool = False) -> subprocess.CompletedProcess:
    """Run ``code`` with ``python -c`` in a fresh process and wait for it; its output is captured as text (with
    ``echo``: written to this process's stderr as it comes, progress bars included, and its last 8 KiB kept as
    ``stderr``; ``timeout`` is then not applied). The caller reads its exit status."""
    # a SIGCHLD handler left by a torch DataLoader of this process would read the child's exit as a worker of
    # its own failing; that exit concerns nobody but subprocess.run
    previous = _default_sigchld()
    try:
        if not echo:
            return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
        tail = b""
        # its stdout too goes to stderr: this process's stdout may be a report (--json) that it must not break
        with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as proc:
            while chunk := proc.stdout.read1(65536):
                sys.stderr.write(chunk.decode(errors="replace"))
                sys.stderr.flush()
                tail = (tail + chunk)[-8192:]
        return subprocess.CompletedProcess(proc.args, proc.returncode, "", tail.decode(errors="replace"))
    finally:
        if previous is not None:
            signal.signal(signal.SIGCHLD, previous)


class NotPortable(Exception):
    """The arguments cannot go to a fresh process: pickle cannot take them (a class defined in a function), or
    the fresh process cannot load them (a class of a script's ``__main__``). The caller runs the call here."""


_CHILD = "import sys\nsys.path[:0] = {path!r}\nfrom edgeprune.backends.process import serve_call\n" \
         "serve_call({folder!r})\n"  # fmt: skip


def call_in_process(func: Callable, *args: Any, what: str, echo: bool = False) -> Any:
    """``func(*args)`` in a fresh process, its return value handed back. ``func`` is a module-level function;
    the arguments and the value travel pickled through a temporary folder, between two processes of this
    interpreter. An :class:`~edgeprune.errors.EdgepruneError` raised there is raised here, same class and
    message. A process that dies (a crash, or killed: out of memory) is a BackendError naming ``what`` and how
    it ended. ``echo``: its output shows here as it comes (:func:`run_python`). Raises :class:`NotPortable` when
    the arguments cannot make the trip."""
    from edgeprune.backends.base import BackendError

    try:
        payload = pickle.dumps(args)
    except Exception as exc:
        raise NotPortable(f"pickle cannot take the arguments ({exc})") from exc
    with tempfile.TemporaryDirectory(prefix="edgeprune-call-") as tmp:
        Path(tmp, "job.pkl").write_bytes(pickle.dumps((func.__module__, func.__qualname__, payload)))
        proc = run_python(_CHILD.format(path=sys.path, folder=tmp), echo=echo)
        result = Path(tmp, "result.pkl")
        if not result.exists():
            how = f"was killed by signal {-proc.returncode} (out of memory?)" if proc.returncode < 0 \
                else f"ended with exit status {proc.returncode}"  # fmt: skip
            raise BackendError(f"the process of {what} {how} before it finished: "
                               + " | ".join(proc.stderr.strip().splitlines()[-3:]))  # fmt: skip
        status, value = pickle.loads(result.read_bytes())
    if status == "error":
        raise value
    if status == "not loaded":
        raise NotPortable(f"a fresh process cannot load the arguments ({value})")
    return value


def builds_apart(target: Target) -> bool:
    """Whether :func:`run_apart` runs work for ``target`` in a fresh process: where its backend says it
    ``builds_apart`` (and this process is not already serving a call)."""
    from edgeprune.backends import get_backend

    return getattr(get_backend(target.backend), "builds_apart", False) and not _in_child[0]


def run_apart(target: Target, func: Callable, *args: Any, what: str, echo: bool = False) -> Any:
    """``func(*args)``: in a fresh process (:func:`call_in_process`) where ``target``'s backend keeps memory
    (:func:`builds_apart`), else here; here too, with a warning, when the arguments cannot make the trip."""
    if not builds_apart(target):
        return func(*args)
    try:
        return call_in_process(func, *args, what=what, echo=echo)
    except NotPortable as exc:
        log.warning("%s runs in this process, whose memory keeps every model it builds: %s", what, exc)
        return func(*args)


def serve_call(folder: str) -> None:
    """The child of :func:`call_in_process`: the call in ``folder``'s job, its outcome written beside it
    (``("done", value)``, ``("error", the EdgepruneError)`` or ``("not loaded", why)``)."""
    from edgeprune.atomic import atomic_path
    from edgeprune.backends.base import BackendError
    from edgeprune.errors import EdgepruneError

    _in_child[0] = True
    module, name, payload = pickle.loads(Path(folder, "job.pkl").read_bytes())
    try:
        args = pickle.loads(payload)
    except Exception as exc:
        outcome = ("not loaded", f"{type(exc).__name__}: {exc}")
    else:
        func = importlib.import_module(module)
        for part in name.split("."):
            func = getattr(func, part)
        try:
            outcome = ("done", func(*args))
        except EdgepruneError as exc:
            outcome = ("error", exc)
            try:
                pickle.loads(pickle.dumps(exc))
            except Exception:  # an error class whose constructor takes more than its message
                outcome = ("error", BackendError(str(exc)))
    with atomic_path(Path(folder, "result.pkl")) as part:  # the parent reads a missing file as a crash
        part.write_bytes(pickle.dumps(outcome))
