"""A Confluent-compatible Schema Registry, through confluent-kafka's ``SchemaRegistryClient``.

May import: streams.core only, and confluent_kafka.
"""
