"""Moved into the package: `python -m edgeprune.kit.collect KIT`, or `python KIT/collect.py KIT` (in every kit)."""
import sys

from edgeprune.kit.collect import main

sys.exit(main())
