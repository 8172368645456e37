"""docs/topics.md against a running runtime: each topic's payload has exactly the keys the table lists."""

from __future__ import annotations

from typing import Any

from flightos.reference.topics import TOPICS, field_names
from flightos.testing import eventually
from tests.runtimes import make_runtime

SERVICES = ["test", "housekeeping", "ground", "jobs", "sar"]


async def test_every_topic_carries_the_keys_docs_topics_md_lists() -> None:
    """One message of each topic, made to happen where it is not periodic, checked key by key."""
    async with make_runtime(SERVICES, ['services.ground.options.udp_bind="127.0.0.1:0"']) as rt:
        c = rt.client
        assert c is not None
        sub = c.subscriber("")
        await c.call("kernel", "ping")  # the subscription is live once a round trip is done
        await c.call("test", "emit", {"name": "drill", "payload": 7})
        await c.call("test", "announce", {"message": "hello"})
        await c.call("test", "product", {"name": "summary", "data": {"n": 1}, "priority": 3})
        await c.call("kernel", "inject", {"fault": "seu", "count": 3})
        await c.call("sar", "process_scene", timeout=60)
        await c.call("jobs", "submit", {"processor": "test.spin", "params": {"seconds": 0.1}, "budget": {"cpu_s": 5}})
        first: dict[str, Any] = {}
        wanted = {
            "tm.kernel.services",
            "tm.kernel.health",
            "tm.kernel.bus",
            "tm.kernel.self",
            "tm.hal.reading",
            "tm.hal.timeline",
            "tm.hal.health",
            "tm.housekeeping.board",
            "ev.kernel",
            "ev.test",
            "tm.test.drill",
            "dl.test.summary",
            "tm.housekeeping.system",
            "tm.housekeeping.services",
            "tm.ground.link",
            "tm.sar.scene",
            "tm.jobs.status",
            "tm.jobs.done",
        }

        async def collect() -> set[str]:
            for env in await sub.batches():
                first.setdefault(env.topic, env.payload)
            return wanted - set(first)

        await eventually(collect, until=lambda missing: not missing, timeout=30, what="one message of each topic")
        sub.close()

    by_name = {t.name: t for t in TOPICS}
    concrete = {"ev.test": "ev.<service>", "tm.test.drill": "tm.test.<name>", "dl.test.summary": "dl.<service>.<name>"}
    for topic in sorted(wanted):
        doc = by_name[concrete.get(topic, topic)]
        keys, listed = set(first[topic]), field_names(doc)
        if doc.fixed:
            assert keys == listed, f"{topic}: payload keys {sorted(keys)}, docs/topics.md lists {sorted(listed)}"
        else:
            assert listed <= keys, f"{topic}: docs/topics.md lists {sorted(listed - keys)} that it does not carry"
    assert set(first["ev.kernel"]) == field_names(by_name["ev.kernel"])
