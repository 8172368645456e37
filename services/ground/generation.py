"""Which reports the ground service generates: ST[03] housekeeping structures and ST[05] event ids (persisted)."""

from __future__ import annotations

from typing import Any

from flightos import Store
from flightos.ground.mdb import HkStructure
from services.ground.reports import hk_data


class HousekeepingReports:
    """ST[03]: the latest payload of each structure's topic, and when each structure is due."""

    def __init__(self, structures: dict[int, HkStructure], store: Store) -> None:
        self.structures = structures
        self.store = store
        self.latest: dict[str, Any] = {}
        self.enabled = {sid: s.enabled for sid, s in structures.items()}
        self.interval = {sid: s.interval_s for sid, s in structures.items()}
        self.next_due = dict.fromkeys(structures, 0.0)
        saved = store.get("hk", {}) or {}
        for sid_text, (on, interval) in saved.items():
            sid = int(sid_text)
            if sid in self.enabled:
                self.enabled[sid], self.interval[sid] = bool(on), float(interval)

    def _save(self) -> None:
        self.store.set("hk", {str(s): [self.enabled[s], self.interval[s]] for s in self.enabled})

    def set_enabled(self, sids: list[int], on: bool) -> None:
        """Enable or disable periodic generation (persisted)."""
        for sid in sids:
            self.enabled[sid] = on
            self.next_due[sid] = 0.0
        self._save()

    def set_interval(self, sid: int, seconds: float) -> None:
        """Change a structure's collection interval (persisted)."""
        self.interval[sid] = seconds
        self.next_due[sid] = 0.0
        self._save()

    def report(self, sid: int) -> bytes:
        """The data of one TM[3,25] from the latest values."""
        s = self.structures[sid]
        return hk_data(s, self.latest.get(s.topic))

    def due(self, now: float) -> list[int]:
        """Enabled structures whose interval has passed (and that have data)."""
        out = []
        for sid, on in self.enabled.items():
            if on and now >= self.next_due[sid] and self.structures[sid].topic in self.latest:
                self.next_due[sid] = now + self.interval[sid]
                out.append(sid)
        return out


class EventFilter:
    """ST[05]: which event ids are reported (every one, unless disabled; persisted)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.disabled: set[int] = set(store.get("events_disabled", []) or [])

    def enable(self, ids: list[int], on: bool) -> None:
        """Enable or disable report generation for event ids."""
        (self.disabled.difference_update if on else self.disabled.update)(ids)
        self.store.set("events_disabled", sorted(self.disabled))
