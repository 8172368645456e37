"""``nvpmodel -q``: the power mode name and its id."""

from __future__ import annotations

from hal.errors import HalParseError


def parse_nvpmodel(text: str) -> tuple[str, int | None]:
    """'NV Power Mode: 15W\\n0' -> ('15W', 0); warnings before the mode line are ignored."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for i, line in enumerate(lines):
        if line.startswith("NV Power Mode:"):
            name = line.split(":", 1)[1].strip()
            if not name:
                raise HalParseError("nvpmodel: empty power mode name")
            mode_id = int(lines[i + 1]) if i + 1 < len(lines) and lines[i + 1].isdigit() else None
            return name, mode_id
    raise HalParseError("nvpmodel: no 'NV Power Mode:' line")
