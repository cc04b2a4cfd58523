"""Hostile and fuzz cases against a live node, and the helper processes live tests start (a
camera, a tf publisher). They live with the tests, not in the installed package; `make soak`
(benchmarks/soak.py) runs the hostile and fuzz passes from here too."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def process_command(name: str) -> list[str]:
    """The command that runs helper script ``name`` (``camera``, ``tf_publisher``) in a process
    of its own: by file path, so the child needs no test/ on its import path."""
    return [sys.executable, str(HERE / f"{name}.py")]
