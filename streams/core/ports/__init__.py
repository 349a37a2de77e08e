"""The ports: Protocols the pipeline and the apps are handed implementations of (a clock, a model
client, an alert sink), with the plain values that cross them.

May import: streams.core.
"""
