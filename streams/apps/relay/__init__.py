"""`keel alerts relay`: keel.alerts sent to the configured sinks.

May import: see streams.apps.
"""
