"""Per (source, topic) sequence accounting: every message a subscriber never got is counted, and only those."""

from __future__ import annotations

import time

Key = tuple[str, str]
"""(source, topic): each publisher numbers each of its topics from 1."""

HOLES_MAX = 32
"""Missing ranges remembered per topic whose copies can come out of order (the kernel's, the vouched)."""
HOLE_KEEP_S = 5.0
"""How long a missing range may still be filled: a late authentic copy comes within TWIN_WAIT_S."""


class Gaps:
    """Counts sequence gaps, including those a publisher's mark reveals at the tail of a burst.

    A subscriber counts from the first number it sees of each (source, topic), so what was sent before
    it joined is not a loss, unless the topic's mark proves otherwise: it carries when the topic's first
    message was sent (the publisher's clock), and a message from the same publisher under the same
    subscription sent before that had reached us, so that subscription already covered the topic.
    A number at or below the last one seen is a new incarnation of the publisher (it numbers from 1
    again): what that incarnation sent before it was never delivered. On topics whose copies can
    arrive out of order (a kernel topic's authentic copy delivered after its proxy copy was lost), a
    late message that fills a counted gap is taken off the count instead.
    """

    __slots__ = ("holes", "last", "lost", "prefixes", "since", "start")

    def __init__(self) -> None:
        self.last: dict[Key, int] = {}
        """The highest sequence number accounted for, per (source, topic), in its current incarnation."""
        self.holes: dict[Key, list[tuple[int, int, float]]] = {}
        """Missing ranges (first, last, when counted) of out-of-order topics, oldest first."""
        self.lost = 0
        self.prefixes: list[str] = []
        """The subscriber's subscriptions."""
        self.since: dict[tuple[str, str], int] = {}
        """(source, prefix): the publisher's clock when it sent the first message delivered under it."""
        self.start: dict[Key, int] = {}
        """Topics first seen past seq 1, until their mark tells whether what came before was lost."""

    def first(self, key: Key, seq: int, mono_ns: int) -> None:
        """A topic's first message here: from then on its publisher is known to reach us under its prefixes."""
        source, topic = key
        for prefix in self.prefixes:
            if topic.startswith(prefix) and mono_ns < self.since.get((source, prefix), mono_ns + 1):
                self.since[(source, prefix)] = mono_ns
        if seq > 1:
            self.start[key] = seq

    def covered(self, key: Key, born_ns: int) -> bool:
        """Whether a subscription of ours already reached this publisher when the topic's first message left."""
        source, topic = key
        return any(topic.startswith(p) and self.since.get((source, p), born_ns + 1) <= born_ns for p in self.prefixes)

    def message(self, key: Key, seq: int, reorders: bool, mono_ns: int) -> None:
        """One message delivered (``reorders``: its topic's copies can arrive out of order)."""
        last = self.last.get(key)
        if last is None:
            self.first(key, seq, mono_ns)
            self.last[key] = seq
        elif seq == last + 1:
            self.last[key] = seq
        elif seq > last:
            self._missing(key, last + 1, seq - 1, reorders)
            self.last[key] = seq
        elif reorders and seq < self.start.get(key, 0):  # late, from before the first one seen here
            self.start[key] = seq
        elif not (reorders and self._found(key, seq)):
            self._restarted(key, seq - 1, reorders)
            self.last[key] = seq

    def run(self, key: Key, first: int, n: int, mono_ns: int) -> None:
        """A batch: messages ``first`` … ``first + n - 1`` (one publisher's frames keep their order)."""
        last = self.last.get(key)
        if last is None:
            self.first(key, first, mono_ns)
        elif first != last + 1:
            if first > last:
                self._missing(key, last + 1, first - 1, False)
            else:
                self._restarted(key, first - 1, False)
        self.last[key] = first + n - 1

    def mark(self, key: Key, sent: int, reorders: bool, born_ns: int | None = None) -> None:
        """The publisher's word that it has sent up to ``sent`` on this topic (whose first message left at
        ``born_ns``, its clock, when the mark says): what is missing up to it is lost."""
        start = self.start.pop(key, None) if self.start else None
        if start is not None and born_ns is not None and self.covered(key, born_ns):
            self._missing(key, 1, start - 1, reorders)  # first seen past 1, but nothing was missed by joining late
        last = self.last.get(key)
        if last is None:  # none of its messages came: lost, unless we may have joined since
            if born_ns is not None and self.covered(key, born_ns):
                self._missing(key, 1, sent, reorders)
            self.last[key] = sent
        elif sent > last:
            self._missing(key, last + 1, sent, reorders)
            self.last[key] = sent
        elif sent < last and not reorders:  # in order, so not stale: a new incarnation whose messages all went
            self._restarted(key, sent, False)
            self.last[key] = sent

    def _restarted(self, key: Key, missing: int, reorders: bool) -> None:
        """A new incarnation of the publisher: its first ``missing`` messages never came."""
        self.holes.pop(key, None)
        self.start.pop(key, None)
        if missing > 0:
            self._missing(key, 1, missing, reorders)

    def _missing(self, key: Key, first: int, last: int, reorders: bool) -> None:
        self.lost += last - first + 1
        if reorders:
            holes = self.holes.setdefault(key, [])
            holes.append((first, last, time.monotonic()))
            if len(holes) > HOLES_MAX:
                del holes[0]

    def _found(self, key: Key, seq: int) -> bool:
        """Whether ``seq`` fills a recently counted gap (then it is no longer lost)."""
        holes = self.holes.get(key)
        if not holes:
            return False
        since = time.monotonic() - HOLE_KEEP_S
        for i, (first, last, at) in enumerate(holes):
            if first <= seq <= last and at >= since:
                rest = [(a, b, at) for a, b in ((first, seq - 1), (seq + 1, last)) if a <= b]
                holes[i : i + 1] = rest
                self.lost -= 1
                return True
        return False
