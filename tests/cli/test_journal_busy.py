"""A journald that does not read holds no log call for long: the entry is dropped, counted and told later."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from flightos.logs import JOURNAL_SEND_TIMEOUT_S, JournalSender, encode_entry


def test_a_backed_up_journal_costs_a_log_call_at_most_the_timeout(tmp_path: Path) -> None:
    """With the journal's queue full, each send returns within the timeout; the next entry it takes counts them."""
    path = tmp_path / "journal.sock"
    journal = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    journal.bind(str(path))
    sender = JournalSender(str(path))
    try:
        entry = encode_entry({"MESSAGE": "x" * 1000})
        worst = 0.0
        for _ in range(2000):  # far more than a socket queue holds
            t0 = time.perf_counter()
            sender.send(entry)
            worst = max(worst, time.perf_counter() - t0)
            if sender.dropped >= 2:
                break
        assert sender.dropped >= 2, "the journal's queue never filled"
        assert worst < JOURNAL_SEND_TIMEOUT_S + 0.3, f"a log call waited {worst:.2f} s"
        journal.setblocking(False)
        while True:  # journald catches up
            try:
                journal.recv(65536)
            except BlockingIOError:
                break
        sender.send(encode_entry({"MESSAGE": "after"}))
        assert b"FLIGHTOS_DROPPED_BEFORE=2\n" in journal.recv(65536)
        assert sender.dropped == 0
    finally:
        sender.close()
        journal.close()
