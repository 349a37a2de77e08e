"""The human review queue: the queue, decisions (decide), applying one (apply), review records,
stats and threshold suggestions, SLAs, reviewer users and sessions. Pure, except web/.

May import: the packages below it (core, agent, cost, contracts, pipeline, alerts). web/ is imported
only by streams.apps.review.
"""
