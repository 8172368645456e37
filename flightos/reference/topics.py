"""The bus topics and their payloads, as one table: docs/topics.md is rendered from it.

The framework may not import services, so their topics are listed here by name; a test
(tests/reference/test_reference.py) reads one message of each from a running runtime and checks
that its keys are exactly the ones listed, so the page cannot drift from the publishers.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topic:
    """One topic (or family of topics): who publishes it, when, and the keys of its payload."""

    name: str
    publisher: str
    when: str
    doc: str
    fields: tuple[tuple[str, str], ...]
    #: False where the keys depend on the service or the message (``tm.<service>.<name>``).
    fixed: bool = True


EVENT_FIELDS = (
    ("id", "event id (int): the kernel's in docs/events.md, a service's own otherwise (0: none given)"),
    ("severity", "1 INFO, 2 LOW, 3 MEDIUM, 4 HIGH (PUS ST[05] severities)"),
    ("severity_name", "the same as text"),
    ("message", "one line saying what happened and why"),
    ("data", "the event's fields (dict); for kernel events docs/events.md lists them per event"),
)

TOPICS: tuple[Topic, ...] = (
    Topic(
        "tm.kernel.services",
        "kernel",
        "`runtime.telemetry_hz` (1 Hz)",
        "every service as `flightos status` shows it",
        (
            (
                "services",
                "list, one dict per service: `name`, `state` (STARTING, READY, BACKOFF, HUNG, FAILED, "
                "STOPPED, DISABLED, ...), `pid`, `incarnation`, `criticality`, `restart`, `cores` "
                "(virtual), `host_cpus`, `restarts`, `last_exit`, `heartbeat_age_ms`, "
                "`heartbeat_limit_ms`, `cpu_percent`, `rss_mb`, `memory_limit_mb`, `tasks_limit`, "
                "`queued`, `inflight`, `reason`, `stats` (the service's last heartbeat counters)",
            ),
        ),
    ),
    Topic(
        "tm.kernel.health",
        "kernel",
        "`runtime.telemetry_hz` (1 Hz)",
        "core health, mode, thermal and power: what docs/health.md describes",
        (
            ("mode", "NOMINAL, DEGRADED or SAFE"),
            ("forced_mode", "the mode ground holds (`flightos mode`), or null"),
            ("hold_safe", "true while a watchdog reset holds the board in SAFE"),
            (
                "watchdog",
                "`armed`, `resets`; on a board with a watchdog in sysfs also `device`, `nowayout`, "
                "`bootstatus` and `reset_reason` (the last reset)",
            ),
            ("junction_c", "junction temperature in °C, or null"),
            ("trip_c", "the trip point in °C, or null"),
            ("thermal_level", "0 (none) to 3: how hard the thermal governor throttles"),
            (
                "edac",
                "`corrected`, `uncorrected` memory error counts (null without EDAC); on the simulator also "
                "`code` (rs, secded), `scrub_period_s`, `next_scrub_in_s`: upsets count at the next scrub",
            ),
            ("power_w", "board power in W, or null"),
            ("budget_w", "the power budget in W, or null"),
            (
                "cores",
                "list, one dict per core: `id`, `state` (HEALTHY, SUSPECT, DEGRADED, OFFLINE), `reason`, "
                "`load_pct`, `forced` (held by ground), `services`",
            ),
            ("energy_mj", "energy per service since start, mJ (dict)"),
            ("monitor", "`period_s`, `ticks`, `mean_tick_ms` of the health monitor"),
            ("throttles", "the throttle level per throttled service"),
            ("shed", "services stopped by the mode"),
            ("decisions", "the last decisions: `t`, `event`, `message`"),
            ("speed_factor", "how many times slower than the reference this board runs Python (measured or set)"),
            ("selftest_worker_start_s", "how long the self-test worker took to become ready, s (null until it is)"),
        ),
    ),
    Topic(
        "tm.kernel.bus",
        "kernel",
        "`runtime.telemetry_hz` (1 Hz)",
        "the router's counters",
        (
            (
                "commands",
                "counters of the command path: `received`, `delivered`, `completed`, `duplicates`, "
                "`queue_full`, `deadline_exceeded`, `service_lost`, `denied`, `too_large`, ...",
            ),
            ("rejected", "`commands` and `control`: refused frames by reason"),
            (
                "identity",
                "caller identities: `services`, `operators`, `refused`, `held`, `forged`, `forged_kernel_topics`, "
                "`unverified_kernel_topics` (a copy whose kernel twin was lost: dropped, counted lost, not a forgery)",
            ),
            ("dropped", "messages the kernel's own subscriber counted lost (sequence gaps, tail of a burst included)"),
            ("pending", "commands waiting for their result"),
        ),
    ),
    Topic(
        "tm.kernel.self",
        "kernel",
        "`runtime.telemetry_hz` (1 Hz)",
        "the kernel process itself",
        (
            ("cpu_percent", "kernel CPU %"),
            ("rss_mb", "kernel resident memory, MB"),
        ),
    ),
    Topic(
        "tm.hal.reading",
        "kernel",
        "`runtime.telemetry_hz` (1 Hz)",
        "the HAL's reading of the board (`hal.BoardReading.to_dict()`, hal/README.md); a field the board "
        "cannot read is null and named in `missing`",
        (
            ("t_mono_ns", "monotonic time of the reading"),
            ("cores", "list: `id`, `online`, `load_pct`, `freq_mhz`, `cluster`"),
            ("zones", "list of thermal zones: `name`, `temp_c`, `trips` (`kind`, `temp_c`), `sysfs`"),
            (
                "throttle",
                "throttling flags in the Pi's get_throttled layout (`raw`, `under_voltage`, `throttled`, "
                "... and their `*_occurred` since boot): the Pi firmware's, or on a Jetson Orin its "
                "soctherm_oc under-voltage and over-current events; null where the board has none",
            ),
            ("rails_mw", "power per rail, mW (dict)"),
            ("edac", "`corrected`, `uncorrected` memory error counts, or null"),
            (
                "watchdog",
                "the configured hardware watchdog: `identity`, `timeout_s`, `max_timeout_s`, `device` "
                "(its sysfs directory), `nowayout`, `bootstatus` and `reset_reason` (the last reset), "
                "or null",
            ),
            ("missing", "fields this board cannot read, with the reason (dict)"),
            (
                "extras",
                "backend-specific values (dict): the simulator's `sim_time_s`, `sunlit`, `in_saa`, "
                "`coreN_state`, `sel_ma`, ...; a Pi's `throttle_source` and the age in s of each command's "
                "answer (`throttle_age_s`, `vc_temp_c_age_s`, ...); a Jetson's `gpu_load_pct`, `nvpmodel` "
                "and Orin event counts (`under_voltage_events`, `over_current_avg_events`, ...)",
            ),
        ),
    ),
    Topic(
        "tm.hal.health",
        "kernel",
        "every 5 s",
        'board health (`hal.health`, docs/health.md "Board health"): each section has `available`, and '
        "`reason` when it could not be read",
        (
            ("t", "wall time of the reading (UTC s)"),
            ("memory", "`total_mb`, `available_mb`, `used_pct`, `swap_total_mb`, `swap_used_mb`, `swap_used_pct`"),
            (
                "disks",
                "list, one per file system measured (`root` /, `state` the state directory): `label`, "
                "`path`, `mount`, `device`, `fstype`, `total_mb`, `free_mb`, `used_pct`, `read_only`",
            ),
            ("read_only_mounts", "`mounts`: block-device file systems of a writable kind mounted read-only"),
            (
                "boot",
                "`uptime_s`, `booted_at`, `boot_id`, `reset_reason` (`unknown` when no source says), "
                "`reset_source`, `evidence`",
            ),
            (
                "kernel_log",
                "from /dev/kmsg: `counts` per kind (under_voltage, edac_ce, edac_ue, oops, bug, panic, "
                "oom, oom_cgroup, fs_read_only, fs_error, mmc_error), `last` events, `records`, "
                "`overruns`, `missed`, `source`, `reason`",
            ),
            (
                "emmc",
                "`cards`: `card`, `name`, `life_time_a`, `life_time_b`, `pre_eol`, `level` (ok, warning, "
                "urgent, exceeded, unknown), `raw`",
            ),
            (
                "clock",
                "`synchronised` (yes, no, unknown), `sync_reason`, `max_error_ms`, `rtc`, `rtc_time`, "
                "`rtc_offset_s` (RTC minus system clock), `rtc_reason`",
            ),
        ),
    ),
    Topic(
        "tm.hal.timeline",
        "kernel",
        "on a simulated board, when the simulator logged something",
        "the simulator's own events since the last message, each entry once. Entries of note are also "
        "raised as `HAL_EVENT` on `ev.kernel` (single SEUs are not; the EDAC scrub that finds them is)",
        (
            (
                "entries",
                "list of the simulator's timeline entries: `t_s` (simulated time), `kind` (seu, sefi, "
                "core_reset, sel, limiter_trip, power_cycle, core_failed, ...), `detail`",
            ),
        ),
    ),
    Topic(
        "ev.kernel",
        "kernel",
        "when the kernel decides or sees something",
        "a kernel event; docs/events.md lists every one with its data",
        (("name", "the event's name, e.g. SERVICE_RESTART_SCHEDULED, CORE_STATE_CHANGED"), *EVENT_FIELDS),
    ),
    Topic(
        "ev.<service>",
        "each service (`Service.event()`)",
        "when the service raises one",
        "a service event (the kernel checks the service is the one sending it)",
        EVENT_FIELDS,
    ),
    Topic(
        "tm.<service>.<name>",
        "each service (`Service.publish(name, payload)`)",
        "as the service publishes",
        "a service's telemetry: the payload is whatever the service passes (msgpack-able)",
        (),
        fixed=False,
    ),
    Topic(
        "dl.<service>.<name>",
        "each service (`Service.downlink(name, payload, priority)`)",
        "as the service downlinks",
        "a product for the ground: the ground service sends it as TM[128,1], queued by priority while there "
        "is no contact",
        (
            ("priority", "0..7 (7 first)"),
            ("data", "the product, as the service passed it"),
        ),
    ),
    Topic(
        "tm.housekeeping.system",
        "housekeeping",
        "`params.rate_hz` (1 Hz)",
        "the host's resources",
        (
            ("core_load_pct", "load per virtual core, % (dict)"),
            ("memory", "`used_pct`, `available_mb`"),
            ("disk", "`path`, `used_pct`, `free_mb`"),
            ("load_avg", "1, 5 and 15 minute load averages"),
        ),
    ),
    Topic(
        "tm.housekeeping.board",
        "housekeeping",
        "`params.rate_hz` (1 Hz), once the kernel has read board health",
        "board health as flat values for ST[03] housekeeping (from `tm.hal.health`); a value that "
        "could not be read is null",
        (
            ("ram_used_pct", "RAM used, %"),
            ("ram_available_mb", "RAM available, MiB"),
            ("swap_used_pct", "swap used, % (null: no swap)"),
            ("root_used_pct", "/ used, %"),
            ("root_free_mb", "/ free, MiB"),
            ("root_read_only", "/ is read-only"),
            ("state_used_pct", "the state directory's file system used, %"),
            ("state_free_mb", "its free space, MiB"),
            ("state_read_only", "it is read-only"),
            ("uptime_s", "seconds since boot"),
            ("reset_reason", "the last reset's reason, or `unknown`"),
            ("kernel_log", "`ok`, or `unavailable` (the reason is in `unavailable`)"),
            ("under_voltage", "under-voltage reports in the kernel log"),
            ("edac_ce", "EDAC corrected-error reports"),
            ("edac_ue", "EDAC uncorrected-error reports"),
            ("oops", "kernel oopses"),
            ("bug", "kernel BUG reports"),
            ("panic", "kernel panics"),
            ("oom", "processes the kernel's OOM killer killed (the whole system out of memory)"),
            ("mmc_errors", "MMC/SD errors"),
            ("fs_errors", "file-system errors"),
            ("fs_read_only", "file systems the kernel remounted read-only"),
            ("emmc_level", "the most worn eMMC card: ok, unknown, warning, urgent, exceeded"),
            ("emmc_life_a", "its life used, type A cells (e.g. `0-10%`)"),
            ("emmc_life_b", "type B cells"),
            ("emmc_pre_eol", "its pre-EOL state"),
            ("clock_synchronised", "yes, no or unknown"),
            ("rtc_offset_s", "RTC minus system clock, s"),
            ("unavailable", "the sources that could not be read, and why (dict)"),
        ),
    ),
    Topic(
        "tm.housekeeping.services",
        "housekeeping",
        "`params.rate_hz` (1 Hz)",
        "a short service table",
        (("services", "list: `name`, `state`, `pid`, `cores`, `cpu_percent`, `rss_mb`, `restarts`"),),
    ),
    Topic(
        "tm.ground.link",
        "ground",
        "every tick of the ground link (1 Hz)",
        "the ground link's counters (docs/ground.md)",
        (
            ("in_contact", "true while the ground is heard"),
            ("stored", "telemetry packets waiting in store-and-forward"),
            (
                "…",
                "one counter per thing that happened so far (`tm_sent`, `tc_dropped`, `products`, ...); "
                "a counter appears once it is not zero",
            ),
        ),
        fixed=False,
    ),
    Topic(
        "tm.sar.scene",
        "sar",
        "after each processed scene",
        "one scene's figures (docs/sar.md)",
        (
            ("scene", "scene id"),
            ("pixels", "pixels in the scene"),
            ("ships_true", "ships in the simulated truth"),
            ("ships_found", "ships detected"),
            ("raw_bytes", "size of the raw scene"),
            ("downlinked_bytes", "size of the alerts sent down"),
            ("ratio", "raw_bytes / downlinked_bytes"),
            ("acquire_s", "time to acquire the scene"),
            ("detect_s", "time to detect"),
            ("megapixels_per_s", "detection speed"),
            (
                "energy_mj",
                "energy the processing used, mJ: board power x processing time; null when no board power "
                "reading exists (then `energy_source` says so)",
            ),
            ("energy_source", "how `energy_mj` was obtained, or why it is unavailable"),
            ("power_w", "the board power used for `energy_mj`, W, or null"),
            ("energy_accounted_mj", "what the kernel's per-period accounting charged meanwhile (coarse: 1 s periods)"),
            ("clutter_nu_median", "K texture shape nu fitted to the sea, median over cells (method `k`; else null)"),
            ("clutter_nu_min", "the spikiest cell's nu (method `k`; else null)"),
            ("tested_px", "pixels tested against a threshold"),
            ("fa_expected", "false alarms the model predicts: pfa x tested_px"),
            ("fa_observed", "threshold crossings outside reported ships"),
            ("fa_ratio", "fa_observed / fa_expected: far above 1, the clutter model does not fit this scene"),
            ("precision", "against the truth"),
            ("recall", "against the truth"),
            ("throttle", "the throttle level it ran at"),
            ("kept_raw", "whether the raw scene was kept"),
        ),
    ),
    Topic(
        "tm.thermwatch.status",
        "thermwatch",
        "`params.rate_hz` (2 Hz)",
        "the plate, its heater and the radio (docs/devices.md)",
        (
            ("temp_c", "the plate's temperature, or null when the sensor failed"),
            ("heater", "the heater line's level, 0 or 1"),
            ("setpoint_c", "the set-point it holds"),
            ("reports", "reports sent over the radio"),
            ("echo_ok", "reports whose loopback echo came back intact"),
            ("echo_bad", "echoes that came back corrupted"),
            ("echo_missing", "echoes that did not come back"),
            ("faults", "failing devices: name -> `errno`, `error`"),
        ),
    ),
    Topic(
        "tm.jobs.status",
        "jobs",
        "every tick (1 Hz)",
        "the job queue (docs/jobs.md)",
        (
            ("mode", "the kernel's mode as the jobs service sees it"),
            ("throttle", "its throttle level"),
            ("paused", "why new jobs do not start, or null"),
            ("max_concurrent", "jobs run at once"),
            ("queued", "jobs waiting"),
            ("queue_limit", "the queue's size"),
            ("running", "the running jobs"),
            ("power_w", "board power"),
            ("n_cpus", "CPUs the jobs may use"),
            ("tenants", "usage per tenant"),
            ("downlink_pending", "job products waiting to be downlinked"),
        ),
    ),
    Topic(
        "tm.jobs.done",
        "jobs",
        "when a job ends",
        "the job's record (`flightos jobs result`)",
        (
            ("id", "job id"),
            ("tenant", "who submitted it"),
            ("processor", "e.g. `sar.detect`"),
            ("state", "done, failed, cancelled, over_budget, ..."),
            ("reason", "why it ended so"),
            ("exceeded", "the budget it ran over, or null"),
            ("partial", "whether the results are partial"),
            ("submitted_at", "UTC s"),
            ("started_at", "UTC s"),
            ("ended_at", "UTC s"),
            ("cpu_s", "CPU seconds used"),
            ("energy_mj", "energy used"),
            ("downlink_bytes", "bytes downlinked"),
            ("wall_s", "wall time"),
            ("budget", "`cpu_s`, `energy_mj`, `downlink_bytes`, `deadline_s`"),
            ("params", "the processor's parameters"),
            ("inputs", "input files from the tenant's store"),
            ("exit_code", "the job process's exit code"),
            ("result", "the processor's summary"),
            ("error", "the error, or null"),
        ),
    ),
    Topic(
        "tm.test.<name>",
        "test",
        "`flightos cmd test emit name=N count=K`",
        "a drill telemetry source",
        (
            ("i", "0..count-1"),
            ("value", "the `payload` argument"),
        ),
    ),
)


def field_names(topic: Topic) -> set[str]:
    """The payload keys the table lists for a topic (``…`` stands for counters that come and go)."""
    return {name for name, _ in topic.fields if name != "…"}


def render_markdown() -> str:
    """docs/topics.md."""
    out = [
        "# Bus topics and their payloads",
        "",
        "Every message on the bus has a topic, a source, a sequence number and a payload (MessagePack).",
        "`tm.` is telemetry, `ev.` an event, `dl.` a product for the ground. Subscribe by prefix: "
        '`flightos tm tm.kernel`, `@subscribe("tm.hal.reading")` in a service, or '
        "`bus.telemetry(topic, predicate)` in a test ([testing.md](testing.md)). Only the kernel "
        "publishes `tm.kernel.*`, `tm.hal.*` and `ev.kernel`; a service publishes under its own name, "
        "within the target's `[acl] publish` ([targets.md](targets.md)).",
        "",
        "This page is generated from `flightos/reference/topics.py` by "
        "`python -m flightos.reference topics`; a test reads one message of each fixed topic from a "
        "running runtime and checks its keys against this table.",
        "",
        "| topic | publisher | when |",
        "|---|---|---|",
    ]
    out += [f"| [`{t.name}`](#{_anchor(t.name)}) | {t.publisher} | {t.when} |" for t in TOPICS]
    for t in TOPICS:
        out += ["", f"## `{t.name}`", "", t.doc[0].upper() + t.doc[1:] + "."]
        if t.fields:
            out += ["", "| key | what it holds |", "|---|---|"]
            out += [f"| `{name}` | {doc} |" if name != "…" else f"| … | {doc} |" for name, doc in t.fields]
    return "\n".join(out) + "\n"


def _anchor(name: str) -> str:
    """The GitHub anchor of a ``## `name` `` heading."""
    return "".join(ch for ch in name.lower() if ch.isalnum() or ch in "-_")
