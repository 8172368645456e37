"""The pieces of the board link on their own: config, key files, failover rules, protocol, replicas."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from flightos.config import target as tgt
from flightos.config.schema import ConfigError
from flightos.config.target import Acl
from flightos.link import keys, protocol, replication
from flightos.link.failover import keeper, taker

BASE: dict[str, Any] = {"hal": {"backend": "sim"}}


def linked(**link: Any) -> dict[str, Any]:
    return {**BASE, "link": link}


def test_a_link_table_is_read_with_its_peers() -> None:
    """board, listen and peers come through with their defaults filled in."""
    t = tgt.from_dict(
        linked(board="obc", listen="tcp://0.0.0.0:7601", peers={"payload": {"endpoint": "tcp://10.0.0.2:7601"}}),
        "t.toml",
    )
    assert t.link.enabled and t.link.board == "obc" and t.link.curve is True
    assert t.link.peers["payload"].endpoint == "tcp://10.0.0.2:7601"
    assert t.link.dead_after_s == 2.0


@pytest.mark.parametrize(
    ("link", "message"),
    [
        ({"board": "obc"}, "link.listen: missing"),
        ({"listen": "tcp://h:1"}, "link.board: missing"),
        ({"board": "obc", "listen": "ipc:///tmp/x"}, "link.listen: expected a tcp://HOST:PORT endpoint"),
        ({"board": "obc", "listen": "tcp://h:99999"}, "port in 1..65535"),
        ({"board": "obc", "listen": "tcp://h:1", "peers": {"p": {}}}, "link.peers.p.endpoint: missing"),
        ({"board": "obc", "listen": "tcp://h:1", "peers": {"obc": {"endpoint": "tcp://h:2"}}}, "its own peer"),
        (
            {"board": "obc", "listen": "tcp://h:1", "peers": {"p": {"endpoint": "tcp://h:2", "public_key": "short"}}},
            "40-character",
        ),
        ({"board": "obc", "listen": "tcp://h:1", "heartbeat_s": 2.0, "dead_after_s": 1.0}, "more than heartbeat_s"),
        ({"board": "obc", "listen": "tcp://h:1", "colour": 1}, "link.colour: unknown key"),
    ],
)
def test_a_bad_link_table_names_the_key(link: dict[str, Any], message: str) -> None:
    """Every mistake in [link] is a ConfigError that names the key and what was expected."""
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        tgt.from_dict(linked(**link), "t.toml")


def test_critical_services_fail_over_by_default_and_others_do_not() -> None:
    """failover defaults to the criticality; a service can opt in or out."""
    t = tgt.from_dict(
        {
            **BASE,
            "services": {
                "a": {"criticality": "critical"},
                "b": {},
                "c": {"failover": True},
                "d": {"criticality": "critical", "failover": False},
            },
        },
        "t.toml",
    )
    assert {n: s.failover for n, s in t.services.items()} == {"a": True, "b": False, "c": True, "d": False}


def test_a_service_config_survives_the_trip_to_a_peer() -> None:
    """What a peer needs to start a service comes back equal, and junk is a ValueError."""
    t = tgt.from_dict(
        {
            **BASE,
            "services": {
                "cam": {"criticality": "critical", "plugin": "test", "params": {"x": 1}, "options": {"o": "p"}}
            },
        },
        "t.toml",
    )
    cfg = t.services["cam"]
    wire = msgspec.msgpack.decode(msgspec.msgpack.encode(cfg.to_wire()))
    back = tgt.ServiceConfig.from_wire("cam", wire)
    assert (back.criticality, back.plugin, back.params, back.options, back.heartbeat_period_s) == (
        "critical",
        "test",
        {"x": 1},
        {"o": "p"},
        cfg.heartbeat_period_s,
    )
    with pytest.raises(ValueError, match="malformed configuration"):
        tgt.ServiceConfig.from_wire("cam", {"criticality": "critical"})


def test_publish_acl_patterns_and_own_events() -> None:
    """A listed service publishes only matching topics, always its own events; publish_default decides the rest."""
    acl = Acl("allow", {}, {"cam": ["tm.cam.*"]}, "deny")
    assert acl.allows_publish("cam", "tm.cam.image")
    assert not acl.allows_publish("cam", "tm.kernel.health")
    assert acl.allows_publish("cam", "ev.cam")
    assert not acl.allows_publish("other", "tm.other.x")
    assert Acl("deny").allows_publish("other", "tm.other.x")  # the commands default does not restrict topics


def test_key_files_are_private_and_never_overwritten(tmp_path: Path) -> None:
    """new writes a 0600 secret and a public file; a second new refuses; rotate keeps the old one aside."""
    pair = keys.create(tmp_path, "obc")
    secret = tmp_path / "obc.key_secret"
    assert secret.stat().st_mode & 0o777 == 0o600
    assert keys.load_secret(tmp_path, "obc") == pair
    assert keys.load_public(tmp_path, "obc") == pair.public
    with pytest.raises(keys.KeyFileError, match="rotate"):
        keys.create(tmp_path, "obc")
    new, retired = keys.rotate(tmp_path, "obc")
    assert new.public != pair.public and retired.exists()
    assert keys.load_secret(tmp_path, "obc") == new


def test_a_secret_key_others_can_read_is_refused(tmp_path: Path) -> None:
    """A secret file with group or world permissions is not used."""
    keys.create(tmp_path, "obc")
    os.chmod(tmp_path / "obc.key_secret", 0o644)
    with pytest.raises(keys.KeyFileError, match="chmod 600"):
        keys.load_secret(tmp_path, "obc")


def test_authorized_service_keys_map_to_their_names(tmp_path: Path) -> None:
    """authorize copies a public key under the service's name; revoke removes it."""
    other = tmp_path / "elsewhere"
    pair = keys.create(other, "station")
    keys.authorize(tmp_path, "gs", other / "station.key")
    assert keys.authorized(tmp_path) == {pair.public: "gs"}
    assert keys.revoke(tmp_path, "gs") and keys.authorized(tmp_path) == {}
    assert not keys.revoke(tmp_path, "gs")


def test_keys_curve_cli_round_trip(tmp_path: Path) -> None:
    """`flightos keys curve new/show/list` work from the shell, and errors are one line without a traceback."""

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "flightos.cli.main", *args], capture_output=True, text=True, timeout=60
        )

    made = cli("keys", "curve", "new", "obc", "--dir", str(tmp_path))
    assert made.returncode == 0, made.stderr
    shown = cli("keys", "curve", "show", "obc", "--dir", str(tmp_path))
    assert shown.stdout.strip() == keys.load_public(tmp_path, "obc").decode()
    assert "obc" in cli("keys", "curve", "list", "--dir", str(tmp_path)).stdout
    again = cli("keys", "curve", "new", "obc", "--dir", str(tmp_path))
    assert again.returncode == 5 and "rotate" in again.stderr and "Traceback" not in again.stderr
    bad = cli("keys", "curve", "mint", "obc", "--dir", str(tmp_path))
    assert bad.returncode == 5 and "expected one of new" in bad.stderr


def test_the_home_board_takes_its_service_back_else_the_first_survivor() -> None:
    """Every kernel computes the same taker and the same keeper."""
    assert taker("payload", {"obc", "payload", "gpu"}) == "payload"
    assert taker("payload", {"obc", "gpu"}) == "gpu"
    assert taker("payload", set()) is None
    assert keeper("payload", "obc", "payload") == "payload"
    assert keeper("gpu", "obc", "payload") == keeper("gpu", "payload", "obc") == "obc"


def test_link_messages_of_another_version_or_shape_are_refused() -> None:
    """A hello from a newer protocol, or garbage, raises LinkProtocolError naming the problem."""
    good = protocol.Hello(v=protocol.VERSION, board="obc", epoch=1, seq=1)
    assert protocol.decode_hello(protocol.encode(good)).board == "obc"
    with pytest.raises(protocol.LinkProtocolError, match="version 99"):
        protocol.decode_hello(protocol.encode(protocol.Hello(v=99, board="obc", epoch=1, seq=1)))
    with pytest.raises(protocol.LinkProtocolError, match="malformed hello"):
        protocol.decode_hello(b"\x93junk")
    with pytest.raises(protocol.LinkProtocolError, match="malformed replica"):
        protocol.decode_replica(protocol.encode(good))


def test_a_replica_is_a_consistent_copy_of_the_whole_data_directory(tmp_path: Path) -> None:
    """A snapshot taken while the store is open in WAL mode restores every committed row and every other file."""
    store = replication.store_path(tmp_path, "svc")
    store.parent.mkdir()
    (store.parent / "keys.json").write_text('{"keys": {}}')
    (store.parent / "sub").mkdir()
    (store.parent / "sub" / "blob.bin").write_bytes(b"\x00\x01")
    db = sqlite3.connect(store)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT)")
    db.executemany("INSERT INTO kv VALUES (?, ?)", [(str(i), "x" * 10) for i in range(100)])
    db.commit()
    sig = replication.signature(tmp_path, "svc")
    assert sig is not None and replication.size(sig) > 0
    data = replication.snapshot(tmp_path, "svc")
    db.execute("INSERT INTO kv VALUES ('late', 'y')")
    db.commit()
    assert replication.signature(tmp_path, "svc") != sig
    db.close()
    other = tmp_path / "other"
    replication.store_path(other, "svc").parent.mkdir(parents=True)
    (replication.store_path(other, "svc").parent / "stale.txt").write_text("from an older run")
    replication.keep(other, "svc", data)
    assert replication.restore(other, "svc")
    copy = sqlite3.connect(replication.store_path(other, "svc"))
    assert copy.execute("SELECT count(*) FROM kv").fetchone() == (100,)
    copy.close()
    restored = replication.data_dir(other, "svc")
    assert (restored / "keys.json").read_text() == '{"keys": {}}'
    assert (restored / "sub" / "blob.bin").read_bytes() == b"\x00\x01"
    assert not (restored / "stale.txt").exists()  # the replica replaces the directory, it does not merge
    assert not replication.restore(tmp_path / "empty", "svc")


@pytest.mark.parametrize("files", [{"../escape": b"x"}, {"/etc/passwd": b"x"}, {"a/../../b": b"x"}])
def test_a_replica_cannot_write_outside_its_directory(tmp_path: Path, files: dict[str, bytes]) -> None:
    """A peer's snapshot naming a path outside the service's directory is refused."""
    with pytest.raises(ValueError, match="unsafe path"):
        replication.keep(tmp_path, "svc", msgspec.msgpack.encode(files))
    with pytest.raises(ValueError, match="not a snapshot"):
        replication.keep(tmp_path, "svc", b"garbage")
