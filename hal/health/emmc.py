"""eMMC wear from the card's own estimates (JEDEC EXT_CSD life time and pre-EOL info, via mmc sysfs)."""

from __future__ import annotations

from dataclasses import dataclass

from hal.fs import Fs
from hal.health.common import Unavailable

CARDS = "/sys/class/mmc_host/mmc*/mmc*:*"

#: ``pre_eol_info`` (EXT_CSD[267]): how much of the reserved blocks are used.
PRE_EOL = {1: "normal", 2: "warning (80% of reserved blocks used)", 3: "urgent (90% of reserved blocks used)"}


@dataclass(frozen=True)
class EmmcWear:
    """One eMMC card: life time used per cell type (A, B) as a range, the pre-EOL state, and a level.

    ``level`` is ``ok``, ``warning`` (pre-EOL warning or >= 80% life used), ``urgent`` (pre-EOL urgent
    or >= 90%) or ``exceeded`` (the card's rated life is used up), ``unknown`` when the card gives none.
    """

    card: str
    name: str | None
    life_time_a: str | None
    life_time_b: str | None
    pre_eol: str | None
    level: str
    raw: str


def life_range(code: int) -> str | None:
    """EXT_CSD life-time code -> ``'0-10%'`` .. ``'90-100%'``, ``'exceeded'``; None for 0 (not defined)."""
    if 1 <= code <= 10:
        return f"{(code - 1) * 10}-{code * 10}%"
    if code == 11:
        return "exceeded"
    return None


def _level(codes: list[int], pre_eol: int | None) -> str:
    known = [c for c in codes if 1 <= c <= 11]
    if not known and pre_eol not in PRE_EOL:
        return "unknown"
    worst = max(known, default=0)
    if worst == 11:
        return "exceeded"
    if pre_eol == 3 or worst >= 10:
        return "urgent"
    if pre_eol == 2 or worst >= 9:
        return "warning"
    return "ok"


def _hex(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text, 16)
    except ValueError:
        return None


def read_emmc(sys: Fs) -> list[EmmcWear] | Unavailable:
    """Every eMMC card's wear; Unavailable when the board has no eMMC (an SD card reports no wear)."""
    cards = sys.glob(CARDS)
    if not cards:
        return Unavailable("no MMC cards under /sys/class/mmc_host")
    out: list[EmmcWear] = []
    kinds: list[str] = []
    for card in cards:
        kind = sys.read_text(f"{card}/type") or "?"
        kinds.append(kind)
        if kind != "MMC":
            continue
        life = sys.read_text(f"{card}/life_time")
        eol_text = sys.read_text(f"{card}/pre_eol_info")
        codes = [c for c in (_hex(p) for p in (life or "").split()) if c is not None]
        eol = _hex(eol_text)
        out.append(
            EmmcWear(
                card=card.rsplit("/", 1)[1],
                name=sys.read_text(f"{card}/name"),
                life_time_a=life_range(codes[0]) if len(codes) > 0 else None,
                life_time_b=life_range(codes[1]) if len(codes) > 1 else None,
                pre_eol=PRE_EOL.get(eol) if eol is not None else None,
                level=_level(codes, eol),
                raw=f"life_time={life or '-'} pre_eol_info={eol_text or '-'}",
            )
        )
    if not out:
        return Unavailable(f"no eMMC: the cards are {', '.join(kinds)} (SD cards report no wear)")
    return out
