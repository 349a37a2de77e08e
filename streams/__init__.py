"""Keel: run AI agents reliably in production on Kafka."""
