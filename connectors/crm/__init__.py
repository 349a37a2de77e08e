"""A small CRM on loopback (customers and tickets over HTTP, its own MCP twin): the business system
the example agent reaches in tests and in `make run`. Not a product: a faithful stand-in for the
APIs Keel's connectors call (bearer or OAuth client-credentials auth, ``Idempotency-Key`` on writes,
429 and 5xx on demand)."""
