"""Regenerate the README's CLI reference from the click commands, so it cannot drift from the code.

    python tools/cli_reference.py            # rewrite the block between the markers in README.md
    python tools/cli_reference.py --check    # exit 1 when README.md is out of date (the tests run this)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import click

from edgeprune.atomic import atomic_write_text
from edgeprune.cli import main as cli_main

START, END = "<!-- cli-reference:start -->", "<!-- cli-reference:end -->"
README = Path(__file__).resolve().parents[1] / "README.md"


def reference() -> str:
    """Every command's --help, in command order, as Markdown."""
    parts = []
    for name in sorted(cli_main.commands):
        command = cli_main.commands[name]
        with click.Context(command, info_name=f"edgeprune {name}", terminal_width=100, max_content_width=100) as ctx:
            parts.append(f"#### `edgeprune {name}`\n\n```\n{command.get_help(ctx)}\n```\n")
    return "\n".join(parts)


def render(readme: str) -> str:
    if START not in readme or END not in readme:
        raise SystemExit(f"README.md lacks the markers {START} ... {END}")
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{reference()}{END}{tail}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    current = README.read_text()
    wanted = render(current)
    if args.check:
        if wanted != current:
            print("README.md's CLI reference is out of date: run `make cli-docs`", file=sys.stderr)
            return 1
        return 0
    atomic_write_text(README, wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
