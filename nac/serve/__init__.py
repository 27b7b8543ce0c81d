"""The asyncio shell: sockets, start-up, the tick that calls every owner, observability."""
