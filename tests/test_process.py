"""Work run in a fresh process (edgeprune.backends.process): what comes back, errors, deaths, and what cannot go."""

from __future__ import annotations

import os
import signal
import sys

import pytest

from edgeprune.backends.base import BackendError
from edgeprune.backends.process import NotPortable, builds_apart, call_in_process, run_apart
from edgeprune.errors import EdgepruneError
from edgeprune.targets import load_target


class OddError(EdgepruneError):
    pass


def pid_and_sum(a: int, b: int) -> tuple[int, int]:
    return os.getpid(), a + b


def raise_odd(message: str) -> None:
    raise OddError(message)


def raise_plain() -> None:
    raise ValueError("a plain bug")


def kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def pid_of(thing: object) -> int:
    return os.getpid()


def say(text: str) -> None:
    print(text)


def nested(target) -> tuple[int, int]:
    """This process's pid and the pid that ``run_apart`` runs in from here."""
    return os.getpid(), run_apart(target, pid_and_sum, 1, 2, what="nested")[0]


def test_the_call_runs_elsewhere_and_its_value_comes_back():
    pid, total = call_in_process(pid_and_sum, 2, 3, what="a sum")
    assert total == 5 and pid != os.getpid()


def test_an_edgeprune_error_there_is_raised_here_with_its_class():
    with pytest.raises(OddError, match="^the message$"):
        call_in_process(raise_odd, "the message", what="a check")


def test_another_exception_there_is_a_backend_error_with_its_last_lines():
    with pytest.raises(BackendError, match=r"process of a check ended with exit status 1.*ValueError: a plain bug"):
        call_in_process(raise_plain, what="a check")


def test_a_killed_process_names_the_signal():
    with pytest.raises(BackendError, match="process of a table was killed by signal 9 \\(out of memory\\?\\)"):
        call_in_process(kill_self, what="a table")


def test_arguments_pickle_cannot_take_are_not_portable():
    class Local:  # defined in a function: pickle cannot name its class
        pass

    with pytest.raises(NotPortable, match="pickle cannot take the arguments"):
        call_in_process(pid_and_sum, Local(), 1, what="a sum")


class ScriptThing:  # stands for a class defined in a user's script (its __main__)
    pass


def test_arguments_a_fresh_process_cannot_load_are_not_portable(monkeypatch):
    monkeypatch.setattr(ScriptThing, "__module__", "__main__")
    monkeypatch.setattr(sys.modules["__main__"], "ScriptThing", ScriptThing, raising=False)
    with pytest.raises(NotPortable, match="a fresh process cannot load the arguments.*ScriptThing"):
        call_in_process(pid_and_sum, ScriptThing(), 1, what="a sum")


def test_echo_shows_the_output_on_stderr_and_keeps_stdout_clean(capsys):
    call_in_process(say, "hello from the child", what="a greeting", echo=True)
    out, err = capsys.readouterr()
    assert "hello from the child" in err and "hello from the child" not in out


def test_only_executorch_work_runs_apart_and_never_twice_nested():
    assert not builds_apart(load_target("cpu-ort"))
    assert run_apart(load_target("cpu-ort"), pid_and_sum, 1, 2, what="a sum") == (os.getpid(), 3)
    xnnpack = load_target("cpu-xnnpack")
    assert builds_apart(xnnpack)
    child, inner = run_apart(xnnpack, nested, xnnpack, what="a nest")
    assert child != os.getpid() and inner == child  # the child ran the inner call itself


def test_work_that_cannot_go_runs_here_with_a_warning(caplog):
    class Local:
        pass

    with caplog.at_level("WARNING", logger="edgeprune.backends.process"):
        pid = run_apart(load_target("cpu-xnnpack"), pid_of, Local(), what="a count of locals")
    assert pid == os.getpid()
    assert "a count of locals runs in this process" in caplog.text and "pickle cannot take" in caplog.text
