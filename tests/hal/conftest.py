"""Shared fixtures of the HAL tests: recorded board trees live in hal_trees.py next to this file."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = str(Path(__file__).parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)
