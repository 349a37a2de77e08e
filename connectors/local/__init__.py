"""What `make run` starts on this machine: a single-node Kafka broker (kafka_local, `keel kafka`), the
llama.cpp model server (llama_local, `keel model`), and the pid-file daemons both run as (daemon).

May import: streams.core.
"""
