"""The message bus: envelope codec, topics, ZeroMQ sockets and their asyncio integration."""
