"""`keel aggregate`: the usage aggregation stream (faust tables) and the alert rules evaluated on it.

May import: see streams.apps.
"""
