"""`keel worker`: the worker process (shell), the budget owner it hosts, and the budget client its
pipeline reserves through.

May import: see streams.apps.
"""
