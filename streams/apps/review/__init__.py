"""`keel review serve`: the review process (shell) with its web UI, the Kafka-backed review service,
the feed of review items, the decision applier, the SLA watch and the review metrics.

May import: see streams.apps; the only importer of streams.review.web.
"""
