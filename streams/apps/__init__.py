"""One shell per process, and what they share: worker/ (`keel worker`, with its budget owner and
client), aggregator/ (`keel aggregate`: usage windows and alert rules), relay/ (`keel alerts relay`),
review/ (`keel review serve`); the faust app, the wiring of settings into concrete pieces, and metrics.

May import: every package below it, faust, aiohttp, and connectors (the only place besides streams.cli).
"""
