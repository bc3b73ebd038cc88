"""A running node: its value, live state, the two aiohttp apps, the scheduler and the service."""
