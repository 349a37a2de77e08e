"""Alert rules and their engine: rules (loaded), windows, conditions, observations, the engine that
decides firing and resolved, an alert's record (records), and delivery to sinks with backoff. Pure.

May import: streams.core, streams.agent, streams.cost, streams.contracts.
"""
