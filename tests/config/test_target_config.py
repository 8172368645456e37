"""Target files: defaults, overrides, and errors that name the file, the key and the expectation."""

from __future__ import annotations

from pathlib import Path

import pytest

from flightos.config import target as tgt
from flightos.config.schema import ConfigError


def write(tmp_path: Path, text: str) -> str:
    p = tmp_path / "t.toml"
    p.write_text(text)
    return str(p)


BASE = '[hal]\nbackend = "linux"\n[services.test]\n'


def test_shipped_targets_all_load() -> None:
    """Every target file in targets/ is valid."""
    found = tgt.available_targets()
    assert {"sim-radhard", "linux"} <= set(found)
    for name in found:
        assert tgt.load(name).name == name


def test_defaults_follow_the_design(tmp_path: Path) -> None:
    """Unset keys take the defaults docs/targets.md lists; critical services get faster heartbeats."""
    t = tgt.load(write(tmp_path, BASE + '[services.hk]\ncriticality = "critical"\n'))
    assert t.health.heartbeat_period_s == 1.0 and t.restart.max_restarts == 5
    assert (t.services["test"].heartbeat_period_s, t.services["test"].heartbeat_misses) == (1.0, 3)
    assert (t.services["hk"].heartbeat_period_s, t.services["hk"].heartbeat_misses) == (0.25, 4)


def test_set_overrides_are_typed_and_validated(tmp_path: Path) -> None:
    """--set takes TOML values, creates tables, and is checked like the file."""
    path = write(tmp_path, BASE)
    t = tgt.load(path, ["health.heartbeat_misses=7", "services.extra.enabled=false", "runtime.spawn=exec"])
    assert t.health.heartbeat_misses == 7
    assert t.services["extra"].enabled is False
    assert t.runtime.spawn == "exec"
    with pytest.raises(ConfigError, match=r"\(via --set\): health.heartbeat_misses: expected an integer >= 1"):
        tgt.load(path, ["health.heartbeat_misses=zero"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        tgt.load(path, ["nonsense"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (BASE + "[healt]\n", "healt: unknown section"),
        (BASE + "[health]\nheartbeat_period_s = -1\n", "health.heartbeat_period_s: expected a number > 0, got -1"),
        (BASE + '[runtime]\nspawn = "thread"\n', "runtime.spawn: expected one of 'forkserver', 'exec'"),
        (BASE + "rate = 3\n", "services.test.rate: unknown key"),
        (BASE + 'cores = ["a"]\n', "services.test.cores: expected a list of core ids"),
        ("[services.test]\n", "hal.backend: missing"),
        ("[hal\n", "not valid TOML"),
    ],
)
def test_bad_files_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    """Each mistake gets one error naming the file and the key."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        tgt.load(path)
    assert path in str(info.value)
    assert message in str(info.value)


def test_unknown_target_lists_the_known_ones() -> None:
    """An unknown name says which targets exist."""
    with pytest.raises(ConfigError, match=r"unknown target 'mars'.*sim-radhard"):
        tgt.load("mars")


def test_targets_doc_is_generated_from_the_schema() -> None:
    """docs/targets.md is exactly what the schema renders (run python -m flightos.config.docs)."""
    from flightos.config.docs import render_markdown

    doc = (Path(__file__).resolve().parents[2] / "docs" / "targets.md").read_text()
    assert doc == render_markdown(), "docs/targets.md is stale: python -m flightos.config.docs > docs/targets.md"


def test_acl_rules_and_errors(tmp_path: Path) -> None:
    """[acl] lets listed callers run matching commands only; mistakes name the key."""
    t = tgt.load(
        write(tmp_path, BASE + '[acl]\ndefault = "deny"\n[acl.commands]\ntest = ["housekeeping.sample", "kernel.p*"]\n')
    )
    assert t.acl.allows("test", "housekeeping", "sample") and t.acl.allows("test", "kernel", "ping")
    assert not t.acl.allows("test", "housekeeping", "report") and not t.acl.allows("sar", "test", "ping")
    assert tgt.load(write(tmp_path, BASE)).acl.allows("anyone", "any", "thing")
    with pytest.raises(ConfigError, match=r"acl\.default: expected 'allow' or 'deny'"):
        tgt.load(write(tmp_path, BASE + '[acl]\ndefault = "maybe"\n'))
    with pytest.raises(ConfigError, match=r"acl\.commands\.test: expected a list"):
        tgt.load(write(tmp_path, BASE + '[acl.commands]\ntest = "everything"\n'))
