"""Profiling: who made a device whose MAC says nothing (randomized or forged), from what it
tells DHCP and what switches report about it.  The parsers and the identification are pure;
the listener is a thin asyncio shell around them."""
