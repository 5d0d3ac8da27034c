"""The command line as a person meets it: order, help size, conflicts, errors, --json, job files."""

from __future__ import annotations

import json
import warnings

import click
import pytest
import torch
from click.testing import CliRunner

import edgeprune
from edgeprune.cli import main

PIPELINE = ["models", "graph", "train", "eval", "targets", "profile", "prune", "export", "validate", "compress",
            "report"]  # fmt: skip


def visible_commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, cmd in group.commands.items():
        if cmd.hidden:
            continue
        yield (*prefix, name), cmd
        if isinstance(cmd, click.Group):
            yield from visible_commands(cmd, (*prefix, name))


def test_help_lists_commands_in_pipeline_order():
    out = CliRunner().invoke(main, ["--help"]).output
    listed = [line.split()[0] for line in out.split("Commands:")[1].strip().splitlines()]
    assert listed == PIPELINE


@pytest.mark.parametrize("path", [p for p, _ in visible_commands(main)], ids=" ".join)
def test_every_help_fits_a_screen(path):
    r = CliRunner().invoke(main, [*path, "--help"], terminal_width=100)
    assert r.exit_code == 0, r.output
    assert len(r.output.splitlines()) <= 50, f"{' '.join(path)} --help is {len(r.output.splitlines())} lines"


def test_version():
    r = CliRunner().invoke(main, ["--version"])
    assert r.exit_code == 0 and edgeprune.__version__ in r.output


# (arguments, an option the message must name): every combination where one option would be ignored
CONFLICTS = [
    (["prune", "m", "--ratio", "0.3", "--latency", "0.5x", "--out", "o"], "--latency"),
    (["prune", "m", "--ratio", "0.3", "--target", "cpu-ort", "--out", "o"], "--target"),
    (["prune", "m", "--ratio", "0.3", "--remove-branches", "--out", "o"], "--remove-branches"),
    (["prune", "m", "--ratio", "0.3", "--max-removed", "0.5", "--out", "o"], "--max-removed"),
    (["prune", "m", "--ratio", "0.3", "--plan", "{plan}", "--out", "o"], "--ratio"),
    (["prune", "m", "--target", "cpu-ort", "--macs", "0.5x", "--measured-rounds", "2", "--out", "o"],
     "--measured-rounds"),
    (["prune", "m", "--target", "cpu-ort", "--macs", "0.5x", "--latency", "0.5x", "--out", "o"], "budget"),
    (["prune", "m", "--latency", "0.5x", "--out", "o"], "--target"),
    (["prune", "m", "--model", "m", "--ratio", "0.3", "--out", "o"], "MODEL"),
    (["train", "m", "--reg", "none", "--lam", "0.1", "--out", "o"], "--lam"),
    (["train", "m", "--reg", "oicsr", "--rho", "0.1", "--out", "o"], "--rho"),
    (["train", "m", "--reg", "slimming", "--size-weighted", "--out", "o"], "--size-weighted"),
    (["finetune", "m", "--reg", "oicsr", "--out", "o"], "--reg"),
    (["train", "m", "--reg", "none", "--no-labels", "--out", "o"], "--no-labels"),
    (["train", "m", "--reg", "none", "--temperature", "2", "--out", "o"], "--temperature"),
    (["train", "m", "--reg", "none", "--distill", "t", "--no-labels", "--distill-weight", "0.5", "--out", "o"],
     "--distill-weight"),
    (["compress", "m", "--target", "cpu-ort", "--latency", "0.7x", "--reg", "none", "--lam", "1", "--out", "o"],
     "--lam"),
    (["compress", "m", "--target", "cpu-ort", "--latency", "0.7x", "--step-epochs", "2", "--out", "o"],
     "--step-epochs"),
    (["compress", "m", "--target", "cpu-ort", "--latency", "0.7x"], "--out"),
    (["validate", "a", "b", "--target", "cpu-ort", "--tolerance", "0.1", "--out", "o"], "--tolerance"),
    (["profile", "fit", "cpu-ort", "everything", "--model", "m"], "everything"),
    (["profile", "measure", "cpu-ort"], "--model"),
    (["prune", "m", "--ratio", "0.3", "--pretrained", "--weights", "{plan}", "--out", "o"], "--weights"),
    (["compress", "m", "--target", "cpu-ort", "--latency", "0.7x", "--input-size", "64", "--out", "o"],
     "--input-size"),
]


@pytest.mark.parametrize("args,named", CONFLICTS, ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_options_that_would_be_ignored_are_usage_errors(args, named, tmp_path):
    plan = tmp_path / "plan.json"
    plan.write_text("{}")
    r = CliRunner().invoke(main, [a.format(plan=plan) for a in args])
    assert r.exit_code == 2, r.output
    assert named in r.output


def test_user_errors_exit_1_with_the_cause_and_bugs_keep_their_traceback(monkeypatch):
    r = CliRunner().invoke(main, ["graph", "no_such_model"])
    assert r.exit_code == 1
    assert "Error: unknown model 'no_such_model'" in r.output and "Traceback" not in r.output

    def broken(*args, **kwargs):
        raise ValueError("an internal bug")

    monkeypatch.setattr("edgeprune.cli.inspect.build_for_graph", broken)
    r = CliRunner().invoke(main, ["graph", "cifar_resnet20"])
    assert isinstance(r.exception, ValueError) and "an internal bug" in str(r.exception)


def test_json_outputs_parse():
    models = json.loads(CliRunner().invoke(main, ["models", "--family", "cifar", "--json"]).output)
    assert {"name": "cifar_resnet20", "family": "cifar", "input": [3, 32, 32], "pretrained": True} in models
    targets = {t["name"]: t for t in json.loads(CliRunner().invoke(main, ["targets", "--json"]).output)}
    assert targets["cpu-ort"]["runs_here"] is True and targets["cpu-ort"]["why_not"] is None
    assert targets["jetson-orin-trt-fp16"]["runs_here"] is False and targets["jetson-orin-trt-fp16"]["why_not"]


def test_compress_job_file_is_read_and_the_command_line_wins(tmp_path):
    job = tmp_path / "job.toml"
    job.write_text('model = "cifar_resnet20"\ntarget = "no-such-target"\nlatency = "0.7x"\nout = "o"\n')
    r = CliRunner().invoke(main, ["compress", "--config", str(job)])
    assert r.exit_code == 1 and "unknown target 'no-such-target'" in r.output
    r = CliRunner().invoke(main, ["compress", "--config", str(job), "--target", "other-target"])
    assert r.exit_code == 1 and "unknown target 'other-target'" in r.output
    job.write_text('model = "cifar_resnet20"\nlatncy = "0.7x"\n')
    r = CliRunner().invoke(main, ["compress", "--config", str(job)])
    assert r.exit_code == 1 and "unknown setting 'latncy'" in r.output and "latency" in r.output
    job.write_text('reg = "none"\nlam = 0.5\ntarget = "cpu-ort"\nlatency = "0.7x"\nout = "o"\n')
    r = CliRunner().invoke(main, ["compress", "cifar_resnet20", "--config", str(job)])
    assert r.exit_code == 2 and "--lam" in r.output


def test_prune_by_ratio_writes_the_same_layout_as_a_budget_prune(tmp_path):
    out = tmp_path / "p"
    r = CliRunner().invoke(main, ["prune", "cifar_resnet20", "--ratio", "0.5", "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output)
    assert summary["params_after"] < 0.5 * summary["params_before"] and summary["oracle_error"] < 1e-4
    assert (out / "plan.json").is_file() and (out / "model" / "arch.json").is_file()
    again = CliRunner().invoke(main, ["prune", "cifar_resnet20", "--ratio", "0.5", "--out", str(out)])
    assert again.exit_code == 1 and "not empty" in again.output


def test_prune_freezes_unknown_ops_only_when_asked(tmp_path):
    args = ["prune", "tiny_nets:fft_cnn", "--ratio", "0.5", "--json"]
    r = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "a")])
    assert r.exit_code == 1 and "fft" in r.output and not (tmp_path / "a").exists()
    r = CliRunner().invoke(main, [*args, "--freeze-unknown", "--out", str(tmp_path / "b")])
    assert r.exit_code == 0, r.output
    pruned = edgeprune.load_pruned(tmp_path / "b" / "model")
    # upstream of the FFT is halved; the channels the FFT mixes are kept whole
    assert [m.out_channels for m in pruned if hasattr(m, "out_channels")] == [4, 8, 4]


def test_a_model_that_shares_a_layer_saves_and_reloads(tmp_path):
    args = ["prune", "tiny_nets:shared_block_cnn", "--ratio", "0.5", "--out", str(tmp_path / "p")]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    pruned = edgeprune.load_pruned(tmp_path / "p" / "model")
    assert pruned.blocks[0]["pos"] is pruned.blocks[1]["pos"]  # still one layer
    original = edgeprune.load_pruned(tmp_path / "p" / "model")
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(pruned(x), original(x))


def test_a_factory_declares_its_input_size(tmp_path):
    from edgeprune.models import get_entry

    assert get_entry("tiny_nets:gray_cnn").input_size == (1, 40, 40)
    r = CliRunner().invoke(main, ["prune", "tiny_nets:gray_cnn", "--ratio", "0.5", "--out", str(tmp_path / "g")])
    assert r.exit_code == 0, r.output
    pruned = edgeprune.load_pruned(tmp_path / "g" / "model")
    assert pruned(torch.randn(2, 1, 40, 40)).shape == (2, 2)
    r = CliRunner().invoke(main, ["prune", "tiny_nets:misdeclared_cnn", "--ratio", "0.5", "--out", str(tmp_path / "m")])
    # two values declare a sequence: an image model so declared stops at its first conv, and the error says why
    assert r.exit_code == 1 and "at input (1, 224, 224) (a batch of sequences" in r.output
    assert "declares (channels, height, width)" in r.output and not (tmp_path / "m").exists()
    r = CliRunner().invoke(main, ["prune", "tiny_nets:sequence_cnn", "--ratio", "0.5", "--out", str(tmp_path / "s")])
    assert r.exit_code == 1 and "failed while tracing at input (1, 3, 224, 224)" in r.output  # says what it fed


def test_a_plan_says_when_the_models_code_read_its_input_size(tmp_path):
    args = ["prune", "tiny_nets:padded_cnn", "--input-size", "22", "--target", "cpu-ort", "--macs", "0.5x", "--json"]
    r = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "p")])
    assert r.exit_code == 0, r.output
    note = json.loads(r.stdout)["note"]
    assert "read 1 traced value(s)" in note and "planned for 22x22 inputs" in note
    assert "plan at the size you deploy" in (tmp_path / "p" / "plan.md").read_text()
    r = CliRunner().invoke(main, ["prune", "tiny_nets:plain_cnn", "--input-size", "22", "--target", "cpu-ort",
                                  "--macs", "0.5x", "--json", "--out", str(tmp_path / "q")])  # fmt: skip
    assert "traced value" not in json.loads(r.stdout).get("note", "")


@pytest.mark.parametrize("target", ["cpu-ort-int8", "cpu-openvino"])
def test_a_kit_refuses_targets_its_collector_cannot_time(target, tmp_path):
    r = CliRunner().invoke(main, ["profile", "kit", target, "--model", "cifar_resnet20", "--out", str(tmp_path / "k")])
    assert r.exit_code == 1 and "device kit" in r.output and not (tmp_path / "k").exists()


def test_edgeprune_warnings_read_as_one_line_and_other_warnings_as_before(monkeypatch):
    from edgeprune.cli.common import PACKAGE

    @click.command("warn")
    def warn() -> None:
        warnings.warn_explicit("from edgeprune", UserWarning, str(PACKAGE / "models" / "registry.py"), 130)
        warnings.warn_explicit("from a library", UserWarning, "/elsewhere/lib.py", 7)

    monkeypatch.setitem(main.commands, "warn", warn)
    shown: list[tuple[str, str]] = []

    def display(message, category, filename, lineno, file=None, line=None) -> None:
        shown.append((str(message), filename))

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = display  # the display in place before the command
        r = CliRunner().invoke(main, ["warn"])
        assert warnings.showwarning is display
    assert r.exit_code == 0, r.output
    assert r.stderr == "Warning: from edgeprune\n"
    assert shown == [("from a library", "/elsewhere/lib.py")]


def test_a_macs_budget_ranks_by_latency_where_the_profile_prices_the_model_else_cuts_uniformly_saying_why(tmp_path,
                                                                                                 monkeypatch):
    from edgeprune.latency import Profile

    loads, load = [], Profile.load.__func__
    monkeypatch.setattr(Profile, "load", classmethod(lambda cls, *a, **k: loads.append(a) or load(cls, *a, **k)))
    r = CliRunner().invoke(main, ["prune", "cifar_resnet20", "--target", "cpu-ort", "--macs", "0.5x", "--json",
                                  "--out", str(tmp_path / "priced")])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert len(loads) == 1  # the profile that decided the ranking is the one the plan is priced with
    priced = json.loads(r.stdout)  # stderr: the profile's note that it was measured with another version
    assert priced["ranked_by"] == "latency" and "latency" in priced["dense"] and "note" not in priced
    args = ["prune", "tiny_nets:plain_cnn", "--input-size", "20", "--target", "cpu-ort", "--macs", "0.5x"]
    r = CliRunner().invoke(main, [*args, "--json", "--out", str(tmp_path / "unpriced")])
    assert r.exit_code == 0, r.output
    unpriced = json.loads(r.stdout)
    # unpriced, a MACs budget is cut uniformly on the channel blocking (the shape that ran fastest most often)
    assert unpriced["ranked_by"] == "uniform" and unpriced["pruned"]["macs"] <= 0.5 * unpriced["dense"]["macs"]
    assert unpriced["compared"]["chosen"] == "uniform" and unpriced["compared"]["by"] == "predicted"
    assert "latency" in unpriced["compared"]["skipped"]  # no profile tables: that shape has no plan
    cut = [g for g in unpriced["groups"] if g["kept"] < g["size"]]
    assert cut and all(g["kept"] % 8 == 0 or 8 % g["kept"] == 0 for g in cut)
    note = unpriced["note"]
    assert note.startswith("cut uniformly on the channel blocking, not by latency: ")
    assert "no table for" in note and "profile measure cpu-ort --model tiny_nets:plain_cnn --input-size 20" in note
    assert unpriced["note"] in (tmp_path / "unpriced" / "plan.md").read_text()
    r = CliRunner().invoke(main, [*args, "--rank-by", "latency", "--out", str(tmp_path / "asked")])
    assert r.exit_code == 1 and "is not in the profile" in r.output and not (tmp_path / "asked").exists()
    assert "profile measure cpu-ort --model tiny_nets:plain_cnn --input-size 20)" in r.output
