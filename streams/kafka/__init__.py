"""Kafka I/O (aiokafka): the producer, consumers and readers, the worker's intake and in-flight
tracker, the outcome store, topic admin, records aiokafka cannot unpack, skipped-record counting, and
the alert log read back.

May import: the pure packages (core ... review), aiokafka. Never streams.apps: what a failure does to
the process is handed in (``Intake(fatal=...)``).
"""
