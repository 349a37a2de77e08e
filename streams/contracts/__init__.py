"""What Keel's records look like from outside: topic names, header names, ``OutRecord``, the
encoding of an outcome into its records (emit), dead letters, retry tiers, parking, and the signed
control headers.

May import: streams.core, streams.agent, streams.cost.
"""
