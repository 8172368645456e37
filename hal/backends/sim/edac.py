"""EDAC over memory words with periodic scrubbing: the word's code (SECDED or Reed-Solomon) decides what a scrub fixes.

Upsets are tracked per word until the next scrub reads the word; the code then says whether the set of
flipped data bits is correctable. Check bits are not modelled (``memory_bits`` counts data bits), and an
uncorrectable pattern is always detected (miscorrection of 3+ errors is not modelled).
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass
from typing import Protocol

from hal.errors import HalConfigError


class EdacCode(Protocol):
    """What a memory word's error-correcting code can correct."""

    @property
    def name(self) -> str:
        """The code's ``hal.edac_code`` name."""

    def correctable(self, bits: Set[int]) -> bool:
        """Whether a word whose data bits ``bits`` are flipped reads back corrected."""


@dataclass(frozen=True)
class Secded:
    """Hamming/BCH single-error-correct, double-error-detect per word (the GR712RC FTMCTRL's BCH EDAC)."""

    name: str = "secded"

    def correctable(self, bits: Set[int]) -> bool:
        """One flipped bit is corrected; two or more in one word are not."""
        return len(bits) <= 1


@dataclass(frozen=True)
class ReedSolomon:
    """Interleaved Reed-Solomon over ``symbol_bits``-bit symbols, each codeword correcting one symbol.

    The default is the FTMCTRL SDRAM code (GR712RC-UM v2.9 §5.10.2): 32 data bits as two RS(6,4) codewords
    over GF(2^4) interleaved nibble-wise (symbol i belongs to codeword i mod 2), 16 check bits. Any number
    of flipped bits inside one nibble is corrected, as are two bad nibbles in different codewords; two bad
    nibbles in the same codeword are uncorrectable.
    """

    symbol_bits: int = 4
    interleave: int = 2
    name: str = "rs"

    def correctable(self, bits: Set[int]) -> bool:
        """At most one bad symbol in each interleaved codeword."""
        symbols = {bit // self.symbol_bits for bit in bits}
        codewords = [symbol % self.interleave for symbol in symbols]
        return len(codewords) == len(set(codewords))


def edac_code(name: str, word_bits: int, symbol_bits: int = 4, interleave: int = 2) -> EdacCode:
    """The code a target declares (``hal.edac_code``), checked against the word size."""
    if name == "secded":
        return Secded()
    if word_bits % (symbol_bits * interleave):
        raise HalConfigError(
            "word_bits",
            f"a Reed-Solomon word of {symbol_bits}-bit symbols in {interleave} "
            f"interleaved codewords needs a multiple of {symbol_bits * interleave} bits, "
            f"got {word_bits}",
        )
    data_symbols = word_bits // symbol_bits // interleave
    if data_symbols + 2 > 2**symbol_bits - 1:  # 2 check symbols per codeword; RS length <= 2^m - 1
        raise HalConfigError(
            "edac_interleave",
            f"{data_symbols} data symbols per codeword do not fit a "
            f"Reed-Solomon code over {symbol_bits}-bit symbols: raise edac_interleave",
        )
    return ReedSolomon(symbol_bits, interleave)


class Edac:
    """Tracks upset bits per word until the next scrub, and the corrected/uncorrected counters."""

    def __init__(self, words: int, word_bits: int = 32, code: EdacCode | None = None) -> None:
        self.words = words
        self.word_bits = word_bits
        self.code: EdacCode = code if code is not None else Secded()
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
        """Read every word: the code corrects what it can, the rest is reported; returns (ce, ue) in words."""
        ce = sum(1 for bits in self._pending.values() if self.code.correctable(bits))
        ue = len(self._pending) - ce
        self.corrected += ce
        self.uncorrected += ue
        self._pending.clear()
        return ce, ue

    def clear(self) -> None:
        """Memory re-initialised (power cycle): pending upsets vanish, counters stay."""
        self._pending.clear()
