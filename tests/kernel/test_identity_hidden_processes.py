"""Sender identity under ``ProtectProc=invisible``: other users' processes have no /proc entry for the kernel.

The installed unit hides other users' processes. An operator's CLI run as root, or as the service user
under sudo, then has an ancestor (or is itself) a process the kernel cannot read: that is the operator,
not an exited process, while the runtime's own tree (all of the kernel's user) is judged as before.
"""

from __future__ import annotations

import os
from typing import Any

from flightos.kernel.routing.identity import Identities, Kind, other_users_process


class _Rec:
    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self.incarnation = 1


VISIBLE = {100: 50, 200: 100, 201: 200, 202: 201, 500: 400}
"""pid -> parent as the kernel can read it: kernel 100 (started by 50, systemd: not ours), fork server 200,
service 201 and its child 202; the CLI 500 run as the service user by sudo 400 (root's: hidden)."""
OTHERS = {50, 400, 700}
"""Alive, another user's: systemd 50, sudo 400, and a CLI run as root 700."""


def _ids() -> Any:
    return Identities(
        {"test": _Rec(201)},
        kernel_pid=100,
        spawners=lambda: [200],
        parent=VISIBLE.get,
        cgroups=lambda pid: "",
        foreign=OTHERS.__contains__,
    )


def test_an_operator_behind_hidden_processes_is_the_operator() -> None:
    """sudo -u flightos flightos ... and a root CLI are the operator; the service and its child stay the service,
    and a process that really exited is still GONE."""
    ids = _ids()
    assert ids.resolve(b"c/cli/500", "h:999:999:500").kind is Kind.OPERATOR
    assert ids.resolve(b"c/cli/700", "h:0:0:700").kind is Kind.OPERATOR
    child = ids.resolve(b"c/x", "h:999:999:202")
    assert (child.kind, child.name) == (Kind.SERVICE, "test")
    assert ids.resolve(b"s/test/1", "h:999:999:200").kind is Kind.REFUSED  # the fork server is no service
    assert ids.resolve(b"s/test/1", "h:999:999:901").kind is Kind.GONE


def test_another_users_process_is_told_from_an_exited_one() -> None:
    """A null signal to pid 1 (root's) is refused for an unprivileged process, to itself allowed, to a free pid
    ESRCH: checked in a real forked process that drops to nobody when this test runs as root."""
    if os.getuid() != 0:
        assert other_users_process(1) is True and other_users_process(os.getpid()) is False
        return
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: become nobody, answer through the pipe, never return into pytest
        code = 1
        try:
            os.setgid(65534)
            os.setuid(65534)
            os.write(
                w,
                repr(
                    (other_users_process(1), other_users_process(os.getpid()), other_users_process(2**22 + 1))
                ).encode(),
            )
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as fh:
        answer = fh.read().decode()
    assert os.waitpid(pid, 0)[1] == 0
    assert answer == "(True, False, False)"
