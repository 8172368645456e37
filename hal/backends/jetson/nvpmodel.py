"""The power mode: ``/var/lib/nvpmodel/status`` with names from ``/etc/nvpmodel.conf``, or ``nvpmodel -q``."""

from __future__ import annotations

import re

from hal.errors import HalParseError
from hal.fs import Fs

STATUS = "/var/lib/nvpmodel/status"
CONF = "/etc/nvpmodel.conf"
_PMODE = re.compile(r"pmode:0*(\d+)")
_MODEL = re.compile(r"<\s*POWER_MODEL\s+ID=(\d+)\s+NAME=([A-Za-z0-9_]+)\s*>")


def parse_nvpmodel(text: str) -> tuple[str, int | None]:
    """'NV Power Mode: 15W\\n0' -> ('15W', 0); warnings before the mode line are ignored."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for i, line in enumerate(lines):
        if line.startswith("NV Power Mode:"):
            name = line.split(":", 1)[1].strip()
            if not name:
                raise HalParseError("nvpmodel: empty power mode name")
            nxt = lines[i + 1] if i + 1 < len(lines) else ""
            mode_id = int(nxt) if nxt.isascii() and nxt.isdigit() else None
            return name, mode_id
    raise HalParseError("nvpmodel: no 'NV Power Mode:' line")


def mode_from_files(fs: Fs) -> tuple[str, int] | None:
    """(name, id) of the mode nvpmodel last set, from the files it writes and reads; None if absent."""
    status = fs.read_text(STATUS)
    match = _PMODE.search(status or "")
    if match is None:
        return None
    mode_id = int(match.group(1))
    names = {int(i): name for i, name in _MODEL.findall(fs.read_text(CONF) or "")}
    if mode_id not in names:
        return None
    return names[mode_id], mode_id
