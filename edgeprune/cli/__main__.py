"""``python -m edgeprune.cli`` (what torchrun launches for multi-process training)."""

from edgeprune.cli import main

main()
