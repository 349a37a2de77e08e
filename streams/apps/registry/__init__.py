"""Schema Registry: Keel's catalogue served over the Confluent Schema Registry REST API (web, store,
compat; `keel registry serve`) and client mode, where a company's registry gives the ids (client_mode).

May import: see streams.apps.
"""
