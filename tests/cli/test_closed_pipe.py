"""`flightos ... | head`: a reader that stops early is no error of flightos (was "internal error: BrokenPipeError")."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize("argv", [["targets"], ["ground", "--help"], ["targets", "--json"]])
def test_output_into_a_closed_pipe_exits_quietly(argv: list[str]) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # no reader at all: the first write fails with EPIPE, as after `head` exits
    try:
        res = subprocess.run(
            [sys.executable, "-m", "flightos.cli.main", *argv],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
    finally:
        os.close(write_end)
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
