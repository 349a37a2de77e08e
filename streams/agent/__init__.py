"""An agent's definition: its files loaded and validated (definition), its output schema, its prompt
template, and its handoff policy.

May import: streams.core.
"""
