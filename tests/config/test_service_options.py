"""Every shipped service declares its options as a typed schema, and docs/targets.md documents each option.

The page is rendered from the schemas (``make docs``); these tests name the service and key that is
undocumented or that the page and the schema disagree on, rather than only saying the page is stale.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec
import msgspec.inspect as mi
import pytest

from flightos import Options, plugins

DOC = Path(__file__).resolve().parents[2] / "docs" / "targets.md"


def shipped() -> dict[str, type[Any]]:
    """The services shipped with flightos (its own entry points), by name, with their options schema."""
    out = {}
    for name, info in sorted(plugins.installed().items()):
        if info.distribution == "flightos":
            out[name] = plugins.load(name).options_schema
    return out


def options_of(schema: type[Options], prefix: str = "", defaults: Any = None) -> dict[str, tuple[str, Any]]:
    """Every option of a schema (a nested options table's keys dotted) -> (description, default); a nested
    table's defaults are those of the enclosing field's default instance when it has one."""
    info = mi.type_info(schema)
    assert isinstance(info, mi.StructType)
    out: dict[str, tuple[str, Any]] = {}
    for f in info.fields:
        ftype, doc = f.type, ""
        if isinstance(ftype, mi.Metadata):
            doc = (ftype.extra_json_schema or {}).get("description", "")
            ftype = ftype.type
        if defaults is not None:
            default = getattr(defaults, f.name)
        else:
            default = (
                f.default
                if f.default is not msgspec.NODEFAULT
                else (f.default_factory() if f.default_factory is not msgspec.NODEFAULT else msgspec.NODEFAULT)
            )
        if isinstance(ftype, mi.StructType) and issubclass(ftype.cls, Options) and ftype.cls.__struct_fields__:
            nested = None if default is msgspec.NODEFAULT else default
            out.update(options_of(ftype.cls, f"{prefix}{f.name}.", nested))
        else:
            out[prefix + f.name] = (doc, default)
    return out


def documented(service: str, page: Path = DOC) -> dict[str, tuple[str, str]] | None:
    """The rows of docs/targets.md's ``[services.<service>.options]`` table: key -> (default, meaning);
    None when the page has no section for the service, {} when it says the service reads none."""
    text = page.read_text()
    m = re.search(rf"^### `\[services\.{re.escape(service)}\.options\]`\n(.*?)(?=^##)", text, re.S | re.M)
    if m is None:
        return None
    rows = {}
    for line in m.group(1).splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) == 4 and cells[0].startswith("`") and cells[0] != "key":
            rows[cells[0].strip("`")] = (cells[2], cells[3])
    return rows


SERVICES = shipped()


def test_the_shipped_services_are_all_checked() -> None:
    assert {"housekeeping", "test", "ground", "jobs", "sar"} <= set(SERVICES)


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_each_service_declares_a_typed_options_schema(service: str) -> None:
    schema = SERVICES[service]
    assert isinstance(schema, type) and issubclass(schema, Options), (
        f"services.{service} declares no options_schema: its [services.{service}.options] table goes unchecked"
    )


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_option_has_a_description(service: str) -> None:
    undocumented = [key for key, (doc, _) in options_of(SERVICES[service]).items() if not doc.strip()]
    assert undocumented == [], (
        f"services.{service}.options: give these Meta(description=...) so docs/targets.md "
        f"says what they do: {undocumented}"
    )


def check_page(service: str, page: Path) -> None:
    """Assert the page's table of ``service`` has exactly the schema's options, defaults and descriptions."""
    rows = documented(service, page)
    assert rows is not None, f"docs/targets.md has no [services.{service}.options] section: run make docs"
    schema = options_of(SERVICES[service])
    assert sorted(rows) == sorted(schema), f"docs/targets.md and the schema of {service} list different options"
    for key, (doc, default) in schema.items():
        page_default, page_doc = rows[key]
        want = "required" if default is msgspec.NODEFAULT else f"`{default!r}`"
        assert (page_default, page_doc) == (want, doc), f"services.{service}.options.{key}: the page disagrees"


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_the_page_lists_exactly_the_schema_with_its_defaults_and_descriptions(service: str) -> None:
    check_page(service, DOC)


def test_a_page_that_differs_from_a_schema_is_caught(tmp_path: Path) -> None:
    """The check fails, naming the service or key, when an option or its meaning differs on the page."""
    fake = tmp_path / "targets.md"
    fake.write_text(DOC.read_text().replace("| `power_w` |", "| `power_watts` |", 1))
    with pytest.raises(AssertionError, match="schema of jobs list different options"):
        check_page("jobs", fake)
    fake.write_text(DOC.read_text().replace("directories of finished jobs kept", "job dirs", 1))
    with pytest.raises(AssertionError, match=r"services\.jobs\.options\.keep_job_dirs: the page disagrees"):
        check_page("jobs", fake)
    fake.write_text(DOC.read_text().replace("### `[services.jobs.options]`", "### jobs", 1))
    with pytest.raises(AssertionError, match=r"no \[services.jobs.options\] section"):
        check_page("jobs", fake)
