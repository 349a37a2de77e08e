"""What calls cost and who may spend it: pricing, budgets (limits, ledgers, reservations) and their
records, and the usage windows the aggregator keeps.

May import: streams.core, streams.agent.
"""
