"""Renders docs/targets.md from the schema, so the documentation can never drift from the code.

Run ``python -m flightos.config.docs > docs/targets.md`` after changing the schema; a test checks it.
"""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Any

import msgspec
import msgspec.inspect

from flightos.config.devices import render_docs as render_devices
from flightos.config.schema import LINK_FIELDS, PEER_FIELDS, SECTIONS, SERVICE_FIELDS

OPTIONS = """## `[services.NAME.options]`

Each service declares the options it reads as a typed schema (`options_schema`, see the
[service guide](service-guide.md#options)). `flightos run` checks the options of every enabled
service against it before anything starts: an unknown key, a wrong type, a NaN or an infinity, or
a value the service rules out is a configuration error (exit 5) that names the key, e.g.
`targets/sim-radhard.toml: services.ground.options.apid: expected an integer, got 'x'`. A service
without a schema gets its table unchecked. The services shipped with flightos:
"""

INTRO = """# Target files

A target is one TOML file per board or profile. `flightos run --target NAME` looks it up in
`$FLIGHTOS_TARGETS_DIR`, then in the repository's `targets/`, then in `/etc/flightos/targets`.
You can also pass a path. Every key is optional unless it says otherwise. Unknown sections and
keys are errors: a typo never passes silently. `--set KEY=VALUE` overrides any key. The value is
a TOML literal; a bare word is taken as a string.

This page is generated from `flightos/config/schema.py` by `python -m flightos.config.docs`.
"""

LINK = """## `[link]`

Joins this kernel with the kernels of other boards into one system (see docs/link.md). Services
call and subscribe across boards by service name. Every link is ZeroMQ over TCP with CURVE: each
kernel has its own key pair (`flightos keys curve new <board>`), knows its peers' public keys,
and admits only the keys it knows (a ZAP allow-list). Critical services fail over to a surviving
board, with the last replicated copy of their store.

"""

ACL = """## `[acl]`

Which commands each service may call, and which topics it may publish. The kernel checks every
command against this table, using the sender's bus identity (on another board: the peer kernel's
CURVE key, and the service that peer hosts). A refused command gets the typed error
`access_denied` and raises event 1701 (HIGH); nothing runs. A refused publication raises
`PublishDenied` in the service (the SDK checks before sending) and is never carried to another
board: the exporting and the importing kernel both check it and raise event 1702. The local
operator's CLI and clients are not restricted: the 0700 runtime directory is their credential.
Ground telecommands are checked as calls of the `ground` service.

| key | default | meaning |
|---|---|---|
| `default` | `'allow'` | what a service without a `commands` entry may call: anything (`allow`) or nothing (`deny`) |
| `commands.<service>` | — | commands that service may call: `"service.command"` patterns, `*` allowed |
| `publish_default` | `'allow'` | a service without a `publish` entry publishes all (`allow`) or its events (`deny`) |
| `publish.<service>` | — | topics that service may publish: `"tm.service.*"` patterns, `*` allowed |

```toml
[acl]
default = "deny"
[acl.commands]
ground = ["*"]
sar = ["jobs.submit", "kernel.ping"]
[acl.publish]
sar = ["tm.sar.*", "ev.sar", "dl.sar.*"]
```

"""

SERVICES = """## `[hal]`

Required: `backend` = `linux`, `sim`, `rpi` or `jetson`. The other keys depend on the backend and
are listed in [hal/README.md](../hal/README.md). The HAL checks them, and its errors name the key
(`hal.cores: expected a positive integer, got 'four'`).

## `[services.NAME]`

One table per service. `NAME` is the service's entry-point name in the `flightos.services` group.
A service that is not installed is a configuration error at start.
"""

TAIL = """| `params` | `{}` | table of initial parameter values (a value set over the bus, persisted, wins) |
| `options` | `{}` | the service's own settings, checked at load against its schema (below); read as `self.config` |

Heartbeat defaults come from `[health]`: a `critical` service uses the critical period and misses.
Restart types follow Erlang/OTP:

- `permanent` always restarts.
- `transient` restarts only after an abnormal exit (non-zero code, a signal, a hang).
- `temporary` never restarts.

Criticality decides who keeps running as capacity shrinks:

- `critical` services run until the last usable core, on the healthiest cores.
- `essential` services are shed after the elastic ones.
- `elastic` services are throttled first, then shed.
"""


def _option_rows(schema: type[Any], prefix: str, defaults: Any = None) -> list[str]:
    """One row per option (a nested options table's keys are dotted), from the schema itself."""
    from flightos.sdk.options import Options
    from flightos.sdk.validation import type_name

    hints = typing.get_type_hints(schema)
    rows: list[str] = []
    info = msgspec.inspect.type_info(schema)
    assert isinstance(info, msgspec.inspect.StructType)
    for f in info.fields:
        hint = hints[f.name]
        doc = (getattr(f.type, "extra_json_schema", None) or {}).get("description", "")
        if defaults is not None:
            value: Any = getattr(defaults, f.name)
        elif f.required:
            value = msgspec.NODEFAULT
        elif f.default is not msgspec.NODEFAULT:
            value = f.default
        else:
            value = f.default_factory()
        if isinstance(hint, type) and issubclass(hint, Options) and hint.__struct_fields__:
            rows += _option_rows(hint, f"{prefix}{f.name}.", None if value is msgspec.NODEFAULT else value)
            continue
        default = "required" if value is msgspec.NODEFAULT else f"`{value!r}`"
        kind = re.sub(r"(?:\w+\.)+(\w+)", r"\1", type_name(hint)).replace("|", "\\|")
        rows.append(f"| `{prefix}{f.name}` | `{kind}` | {default} | {doc} |")
    return rows


def render_options() -> list[str]:
    """The option schemas of the services shipped with flightos."""
    from flightos import plugins

    out = [OPTIONS]
    for name, info in sorted(plugins.installed().items()):
        if info.distribution != "flightos":
            continue
        try:
            schema = plugins.load(name).options_schema
        except plugins.PluginError:
            continue
        out += [f"### `[services.{name}.options]`", ""]
        if schema is None:
            out += ["Free-form: not checked.", ""]
        elif not schema.__struct_fields__:
            out += ["This service reads no options: any key here is an error.", ""]
        else:
            out += ["| key | type | default | meaning |", "|---|---|---|---|", *_option_rows(schema, ""), ""]
    return out


def render_markdown() -> str:
    """The whole of docs/targets.md."""
    out = [INTRO]
    for sname, fields in SECTIONS.items():
        out += [f"## `[{sname}]`", "", "| key | default | meaning |", "|---|---|---|"]
        out += [f"| `{k}` | `{f.default!r}` | {f.doc} |" for k, f in fields.items()]
        out.append("")
    out += [LINK, "| key | default | meaning |", "|---|---|---|"]
    out += [f"| `{k}` | `{f.default!r}` | {f.doc} |" for k, f in LINK_FIELDS.items()]
    out += ["", "`[link.peers.<board>]`, one table per peer:", "", "| key | default | meaning |", "|---|---|---|"]
    out += [f"| `{k}` | `{f.default!r}` | {f.doc} |" for k, f in PEER_FIELDS.items()]
    out.append("")
    out += render_devices()
    out += [ACL, SERVICES, "| key | default | meaning |", "|---|---|---|"]
    out += [f"| `{k}` | `{f.default!r}` | {f.doc} |" for k, f in SERVICE_FIELDS.items()]
    out.append(TAIL)
    out += render_options()
    example = Path(__file__).resolve().parents[2] / "targets" / "sim-radhard.toml"
    if example.is_file():
        out += ["## Example", "", "```toml", example.read_text().strip(), "```", ""]
    return "\n".join(out)


if __name__ == "__main__":
    print(render_markdown(), end="")
