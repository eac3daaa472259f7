"""Signaling: the aiohttp application, its configuration, storage and command line."""
