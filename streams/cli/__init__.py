"""The `keel` command: main (the parser and dispatch) and one module per command group (alerts, dlq,
usage_report, budget_report, review, review_users, demo, ...).

May import: everything, connectors included.
"""
