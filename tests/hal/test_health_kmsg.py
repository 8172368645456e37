"""The kernel-log reader parses /dev/kmsg records, never blocks, and survives overruns and refusals."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from hal.health import kmsg
from hal.health.kmsg import KmsgReader, classify, parse_record

# Real-format records (prio,seq,usec,flags;message) of the kinds an operator must see, and some that are not.
RECORDS = [
    "6,1,0,-;Booting Linux on physical CPU 0x0000000000 [0x410fd083]",
    "6,2,1250000,-;mmc0: new HS200 MMC card at address 0001",
    " SUBSYSTEM=mmc",
    " DEVICE=+mmc:mmc0:0001",
    "2,3,5140900,-;hwmon hwmon1: Undervoltage detected!",
    "2,4,5141000,-;Under-voltage detected! (0x00050005)",
    "4,5,5200000,-;Voltage normalised (0x00000000)",
    "3,6,86400123456,-;EDAC MC0: 1 CE memory read error on CPU_SrcID#0_Ha#0_Chan#0_DIMM#0 (channel:0 slot:0)",
    "0,7,86400123999,-;EDAC MC0: 1 UE memory read error on CPU_SrcID#0_Ha#0_Chan#0_DIMM#0 (channel:0 slot:0)",
    "3,8,90000000000,-;mmc0: Timeout waiting for hardware interrupt.",
    "3,9,90000001000,-;mmcblk0: error -110 transferring data, sector 1234, nr 8, cmd response 0x900, card status 0xb00",
    "3,10,90000002000,-;I/O error, dev mmcblk0, sector 5678 op 0x1:(WRITE) flags 0x800 phys_seg 1 prio class 2",
    "3,11,90000003000,-;EXT4-fs error (device mmcblk0p2): ext4_find_entry:1455: inode #2: comm ls: reading directory",
    "2,12,90000004000,-;EXT4-fs (mmcblk0p2): Remounting filesystem read-only",
    "0,13,91000000000,-;Internal error: Oops: 0000000096000004 [#1] PREEMPT SMP",
    "0,14,91000001000,-;BUG: soft lockup - CPU#2 stuck for 23s! [kworker/2:1:123]",
    "0,15,91000002000,-;Kernel panic - not syncing: Fatal exception",
    "30,16,91000003000,-;systemd[1]: Started flightos.service - flightos.",
    "3,17,92000000000,-;Memory cgroup out of memory: Killed process 4242 (python3) total-vm:812345kB, "
    "anon-rss:262144kB, file-rss:0kB, shmem-rss:0kB, UID:998 pgtables:900kB oom_score_adj:0",
    "6,18,92000000100,-;oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,task=python3",
    "3,19,92000000200,-;Out of memory: Killed process 4343 (sar) total-vm:2000000kB, anon-rss:1800000kB",
]


def test_parse_a_record() -> None:
    """Level and facility come from prio; seq and the time since boot are integers."""
    rec = parse_record(b"30,16,91000003000,-;systemd[1]: Started flightos.service - flightos.\n")
    assert rec is not None
    assert (rec.level, rec.facility, rec.seq, rec.usec) == (6, 3, 16, 91000003000)
    assert rec.message == "systemd[1]: Started flightos.service - flightos."
    assert parse_record("no semicolon here") is None
    assert parse_record("x,1,2,-;bad prio") is None


def test_each_kind_is_recognised() -> None:
    """Every line of the sample goes to the kind an operator would name; boot chatter to none."""
    kinds = [classify(line.partition(";")[2]) for line in RECORDS if not line.startswith(" ")]
    assert kinds == [
        None,
        None,
        "under_voltage",
        "under_voltage",
        None,
        "edac_ce",
        "edac_ue",
        "mmc_error",
        "mmc_error",
        "mmc_error",
        "fs_error",
        "fs_read_only",
        "oops",
        "bug",
        "panic",
        None,
        "oom_cgroup",
        None,
        "oom",
    ]


def test_a_file_of_records_is_counted_once_and_read_incrementally(tmp_path: Path) -> None:
    """Counts, the last events and the record count; a second poll reads only what was appended."""
    log = tmp_path / "kmsg"
    log.write_text("\n".join(RECORDS[:9]) + "\n")
    reader = KmsgReader(str(log), keep=3)
    events = reader.poll()
    assert [e.kind for e in events] == ["under_voltage", "under_voltage", "edac_ce", "edac_ue"]
    assert reader.counts["under_voltage"] == 2 and reader.records == 7
    with log.open("a") as fh:
        fh.write("\n".join(RECORDS[9:]) + "\n")
    more = reader.poll()
    assert [e.kind for e in more][-5:] == ["oops", "bug", "panic", "oom_cgroup", "oom"]
    s = reader.summary()
    assert s.available and s.counts["mmc_error"] == 3 and s.counts["panic"] == 1 and s.counts["oom"] == 1
    assert [e.seq for e in s.last] == [15, 17, 19] and s.last[-1].t_boot_s == pytest.approx(92000.0002)
    assert reader.poll() == []
    reader.close()


def test_a_pipe_never_blocks_and_a_half_line_waits(tmp_path: Path) -> None:
    """An empty FIFO with a writer: poll returns at once; a record split across writes is parsed whole."""
    fifo = tmp_path / "kmsg"
    os.mkfifo(fifo)
    reader = KmsgReader(str(fifo))
    assert reader.poll() == []  # no writer yet: opens non-blocking
    wfd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    try:
        assert reader.poll() == []  # EAGAIN, not a hang
        os.write(wfd, b"2,40,5140900,-;hwmon hwmon1: Under")
        assert reader.poll() == []
        os.write(wfd, b"voltage detected!\n")
        assert [e.kind for e in reader.poll()] == ["under_voltage"]
    finally:
        os.close(wfd)
        reader.close()


def test_overrun_epipe_is_counted_and_reading_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """/dev/kmsg answers EPIPE when records were overwritten: counted, and the next record is read."""
    chunks: list[bytes | OSError] = [
        b"2,100,1000,-;hwmon hwmon1: Undervoltage detected!\n",
        BrokenPipeError(errno.EPIPE, "Broken pipe"),
        b"0,180,2000,-;Kernel panic - not syncing: Fatal exception\n",
        BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable"),
    ]

    def fake_read(fd: int, size: int) -> bytes:
        item = chunks.pop(0)
        if isinstance(item, OSError):
            raise item
        return item

    log = tmp_path / "kmsg"
    log.write_text("")
    reader = KmsgReader(str(log))
    monkeypatch.setattr(kmsg.os, "read", fake_read)
    assert [e.kind for e in reader.poll()] == ["under_voltage", "panic"]
    s = reader.summary()
    assert (s.overruns, s.missed, s.records) == (1, 79, 2)


@pytest.mark.parametrize(
    ("code", "restrict", "says"),
    [
        (errno.EPERM, "1", "needs CAP_SYSLOG while kernel.dmesg_restrict = 1"),
        (errno.EACCES, None, "needs CAP_SYSLOG"),
        (errno.EACCES, "0", "a sandbox hides the log (systemd ProtectKernelLogs=yes"),
    ],
)
def test_not_permitted_is_unavailable_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, code: int, restrict: str | None, says: str
) -> None:
    """The open is refused: unavailable, with the likely cause from kernel.dmesg_restrict; never raises."""

    def refuse(path: str, flags: int) -> int:
        raise PermissionError(code, os.strerror(code))

    monkeypatch.setattr(kmsg.os, "open", refuse)
    monkeypatch.setattr(kmsg, "dmesg_restrict", lambda: restrict)
    reader = KmsgReader("/dev/kmsg")
    assert reader.poll() == []
    s = reader.summary()
    assert not s.available and says in s.reason and s.reason.startswith("/dev/kmsg: not permitted (")
    assert reader.poll() == []  # does not retry and fail every poll


def test_missing_log_is_unavailable(tmp_path: Path) -> None:
    """No such file: unavailable, the path named."""
    reader = KmsgReader(str(tmp_path / "dev/kmsg"))
    reader.poll()
    assert not reader.available and str(tmp_path / "dev/kmsg") in reader.reason


def test_the_real_kernel_log_reads_or_says_why() -> None:
    """On this host /dev/kmsg either reads records or is unavailable with a reason; both without blocking."""
    reader = KmsgReader()
    reader.poll()
    reader.close()
    s = reader.summary()
    assert (s.available and s.records > 0) or (not s.available and s.reason)
