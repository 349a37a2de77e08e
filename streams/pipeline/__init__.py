"""Deciding one event: ``process`` (process), decode, the model chain (chain, capacity), the fallback
decision (fallback), parsing and validation (parse), circuit breakers, rate limits and model slots, and
the handoff to a human (handoff). ``Deps`` (deps) is what the wiring hands in. Pure: no Kafka, no HTTP.

May import: streams.core, streams.agent, streams.cost, streams.contracts.
"""
