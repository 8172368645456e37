"""Event severities, mapped one to one onto the PUS ST[05] report types."""

from __future__ import annotations

import enum


class Severity(enum.IntEnum):
    """How bad an event is: INFO is a normal progress report, HIGH needs the operator now."""

    INFO = 1
    LOW = 2
    MEDIUM = 3
    HIGH = 4
