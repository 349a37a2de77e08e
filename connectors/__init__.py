"""The outside world: model providers (models/), alert sinks (sinks/), the local broker and model server
(local/), and the provider simulator (simulator/).

May import: streams.core only (the vocabulary: errors, settings, the ports it implements) and third-party
clients. Only streams.apps and streams.cli import connectors (import-linter, pyproject.toml).
"""
