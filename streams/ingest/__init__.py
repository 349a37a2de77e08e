"""Webhook ingest, the pure part: declared sources (deploy/sources/*.yaml), their signature schemes
(Stripe, GitHub, Slack, a generic HMAC) and the mapping of a webhook's body to Keel's request envelope.
The HTTP edge is streams/apps/ingest/. Imports core and agent only; no aiohttp, aiokafka or httpx."""
