"""An OpenAI-compatible provider simulator (not a model) for tests, demos and benchmarks:
``python -m connectors.simulator``. server: the aiohttp app; outputs: what it answers; limits: its
rate limits; cli: its command line.

May import: streams.core.
"""
