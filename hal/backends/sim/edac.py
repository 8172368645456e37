"""SEC-DED EDAC over memory words with periodic scrubbing (two hits between scrubs = uncorrectable)."""

from __future__ import annotations


class Edac:
    """Tracks upset bits per word until the next scrub, and the corrected/uncorrected counters."""

    def __init__(self, words: int, word_bits: int = 32) -> None:
        self.words = words
        self.word_bits = word_bits
        self.corrected = 0
        self.uncorrected = 0
        self._pending: dict[int, set[int]] = {}

    def upset(self, word: int, bit: int) -> None:
        """Flip one bit of one word (flipping the same bit twice restores it)."""
        bits = self._pending.setdefault(word, set())
        bits ^= {bit}
        if not bits:
            del self._pending[word]

    @property
    def pending_words(self) -> int:
        """Words holding an error that no scrub has seen yet."""
        return len(self._pending)

    def scrub(self) -> tuple[int, int]:
        """Read every word: single errors are corrected, multiple are reported; returns (ce, ue)."""
        ce = sum(1 for bits in self._pending.values() if len(bits) == 1)
        ue = len(self._pending) - ce
        self.corrected += ce
        self.uncorrected += ue
        self._pending.clear()
        return ce, ue

    def clear(self) -> None:
        """Memory re-initialised (power cycle): pending upsets vanish, counters stay."""
        self._pending.clear()
