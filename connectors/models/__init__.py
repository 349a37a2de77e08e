"""Model provider clients: implementations of ``streams.core.ports.model.ModelClient``.

May import: streams.core, httpx.
"""
