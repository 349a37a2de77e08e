"""`keel ingest serve`: signed webhooks (streams/ingest/) written to the agents' input topics (aiohttp)."""
