"""What every command shares: the ordered group that handles errors once, the common options, conflicts."""

from __future__ import annotations

import functools
import json
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import click
from click.core import ParameterSource

from edgeprune.errors import EdgepruneError


class PipelineGroup(click.Group):
    """Lists commands in the order they were added (the pipeline's), and turns an :class:`EdgepruneError`
    into its message and exit code. Any other exception is a bug and keeps its traceback."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)

    def invoke(self, ctx: click.Context):
        try:
            with warnings.catch_warnings():  # restores the display that was in place after the command
                warnings.showwarning = functools.partial(_show_warning, warnings.showwarning)
                return super().invoke(ctx)
        except EdgepruneError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(exc.exit_code)


PACKAGE = Path(__file__).resolve().parents[1]


def _show_warning(shown: Callable, message, category, filename, lineno, file=None, line=None) -> None:
    """edgeprune's own warnings as one ``Warning: ...`` line (a user needs the message, not our source line);
    other libraries' warnings as ``shown`` (the display in place before) shows them."""
    if Path(filename).resolve().is_relative_to(PACKAGE):
        click.echo(f"Warning: {message}", err=True)
    else:
        shown(message, category, filename, lineno, file, line)


def options(*decorators: Callable) -> Callable:
    """Apply click decorators in reading order (the first is the first in --help)."""

    def apply(fn):
        for d in reversed(decorators):
            fn = d(fn)
        return fn

    return apply


def freeze_unknown_option(fn: Callable) -> Callable:
    """--freeze-unknown, alike in every command that builds a model's channel graph."""
    return click.option("--freeze-unknown", is_flag=True,
                        help="Keep the channels around ops the graph does not know, and blocks torch.fx cannot "
                        "trace whole, unpruned, instead of failing (`edgeprune graph MODEL --freeze-unknown` "
                        "lists them).")(fn)  # fmt: skip


def hidden(*param_decls: str, **attrs) -> Callable:
    """An option kept for research or for an old spelling: accepted, but not shown in --help."""
    return click.option(*param_decls, hidden=True, **attrs)


def model_argument(fn: Callable) -> Callable:
    """MODEL, positional in every command; ``--model M`` still works (hidden) as the older spelling."""
    fn = hidden("--model", "model_option", default=None, help="Older spelling of MODEL.")(fn)
    return click.argument("model", required=False)(fn)


def resolve_model_arg(model: str | None, model_option: str | None) -> str:
    if model and model_option:
        raise click.UsageError("give MODEL once: as the argument or (older spelling) --model, not both")
    if not (model or model_option):
        raise click.UsageError("missing MODEL: a registry name (edgeprune models), pkg.module:factory, a training "
                               "run or a pruned-model folder")
    return model or model_option


def weights_options(fn: Callable) -> Callable:
    """``--pretrained`` and ``--weights FILE``: the command receives one ``pretrained`` value (False, True or the
    file's path), which every library stage takes as it is."""

    @functools.wraps(fn)
    def merged(*args, pretrained: bool, weights: str | None, **kwargs):
        if pretrained and weights:
            raise click.UsageError("give --pretrained or --weights FILE, not both")
        return fn(*args, pretrained=weights or pretrained, **kwargs)

    return options(
        click.option("--pretrained", is_flag=True, help="Start from the model's pretrained weights."),
        click.option("--weights", type=click.Path(exists=True, dir_okay=False), default=None, metavar="FILE",
                     help="Start from this weights file (safetensors, torch checkpoint)."),
    )(merged)  # fmt: skip


target_option = click.option("--target", "target_name", metavar="NAME",
                             help="Device target (see `edgeprune targets`).")  # fmt: skip
json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (for pipelines).")


def profile_option_with(help: str) -> Callable:
    """``--profile FILE``, with what the command does with it (validate takes none by default)."""
    return click.option("--profile", "profile_path", type=click.Path(exists=True, dir_okay=False), default=None,
                        metavar="FILE", help=help)  # fmt: skip


profile_option = profile_option_with("Latency profile (default: this device's for the target, else a shipped one).")


def given(ctx: click.Context, name: str) -> bool:
    """Whether the user set option ``name`` (on the command line, environment or --config), not its default."""
    source = ctx.get_parameter_source(name)
    return source is not None and source not in (ParameterSource.DEFAULT,)


def flag_name(ctx: click.Context, name: str) -> str:
    """The option's longest spelling, for messages."""
    for p in ctx.command.params:
        if p.name == name:
            return max(p.opts, key=len) if p.opts else name
    return name


def forbid(ctx: click.Context, names: Iterable[str], why: str) -> None:
    """A usage error naming any of ``names`` the user gave: they would be ignored, because ``why``."""
    extra = [flag_name(ctx, n) for n in names if given(ctx, n)]
    if extra:
        raise click.UsageError(f"{', '.join(extra)} cannot be used {why}")


def emit(as_json: bool, data: dict | list, text: str | Callable[[], str]) -> None:
    """Print ``data`` as JSON, or the human-readable ``text``."""
    if as_json:
        click.echo(json.dumps(data, indent=1, default=str))
    else:
        click.echo(text() if callable(text) else text)
