"""Regenerate docs/cli.md's command reference from the click commands, so it cannot drift from the code.

    python tools/cli_reference.py            # rewrite the block between the markers in docs/cli.md
    python tools/cli_reference.py --check    # exit 1 when docs/cli.md is out of date (the tests run this)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import click

from edgeprune.atomic import atomic_write_text
from edgeprune.cli import main as cli_main

START, END = "<!-- cli-reference:start -->", "<!-- cli-reference:end -->"
DOC = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def _sections(command: click.Command, path: str, parent: click.Context | None) -> list[str]:
    """``command``'s --help, then its visible subcommands' in the group's own order (hidden aliases left out)."""
    with click.Context(command, parent=parent, info_name=path.split()[-1], terminal_width=100,
                       max_content_width=100) as ctx:  # fmt: skip
        parts = [f"### `{path}`\n\n```\n{command.get_help(ctx)}\n```\n"]
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                if sub is not None and not sub.hidden:
                    parts += _sections(sub, f"{path} {name}", ctx)
    return parts


def reference() -> str:
    """Every visible command's --help, as Markdown; the top-level group's own help is left out."""
    with click.Context(cli_main, info_name="edgeprune", **cli_main.context_settings) as ctx:  # -h too, as the CLI has
        parts = []
        for name in cli_main.list_commands(ctx):
            command = cli_main.get_command(ctx, name)
            if command is not None and not command.hidden:
                parts += _sections(command, f"edgeprune {name}", ctx)
    return "\n".join(parts)


def render(doc: str) -> str:
    if START not in doc or END not in doc:
        raise SystemExit(f"{DOC} lacks the markers {START} ... {END}")
    head, rest = doc.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{reference()}{END}{tail}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    current = DOC.read_text()
    wanted = render(current)
    if args.check:
        if wanted != current:
            print("docs/cli.md's command reference is out of date: run `make cli-docs`", file=sys.stderr)
            return 1
        return 0
    atomic_write_text(DOC, wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
