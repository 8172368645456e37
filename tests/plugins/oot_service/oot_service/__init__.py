"""A service that lives outside the flightos repository and is found only by its entry point."""

from flightos import Parameter, Service, command, periodic


class OutOfTree(Service):
    """Counts ticks in its store and answers where it comes from."""

    name = "oot"
    step = Parameter(1, min=1, max=10)

    async def on_start(self) -> None:
        self.ticks = int(self.store.get("ticks", 0))

    @command()
    async def origin(self) -> dict:
        """Where this service was imported from."""
        return {"module": __name__, "file": __file__, "ticks": self.ticks}

    @periodic(hz=20)
    async def tick(self) -> None:
        self.ticks += self.step
        self.store.set("ticks", self.ticks)
        await self.publish("ticks", {"ticks": self.ticks})
