"""The names of the headers Keel writes on its records (documented in docs/topics.md).

Dead-letter headers (streams/contracts/dead_letter.py) mirror Kafka Connect / Spring Kafka; the control
headers that steer a run are streams/contracts/control.py; an alert's are streams/alerts/records.py.
"""

from __future__ import annotations

H_EVENT_ID = "keel.event_id"
H_TRACE_ID = "keel.trace_id"
H_AGENT = "keel.agent"
H_CONFIG_VERSION = "keel.config_version"
H_OUTCOME = "keel.outcome"
H_EVAL_RUN = "keel.eval.run"  # on the usage records of a `keel eval` run (purpose ``eval``): the run's id

# A re-run after a rejection (the agent's ``handoff.on_reject: rerun``): the review service writes the
# item's original key and value back to the agent's input topic with these headers; the worker runs the
# event again as a new pass, skipping the models whose outputs were rejected (this one's and earlier re-runs').
H_RERUN_OF = "keel.review.rerun_of"  # the rejected item's id
H_SKIP_MODEL = "keel.review.skip_model"  # provider/models to leave out of the chain, comma-separated
H_RERUN_NUMBER = "keel.review.pass"  # the pass the re-run is (decimal): earlier passes' records are not it
