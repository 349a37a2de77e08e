"""`keel eval`: a candidate agent version measured against a baseline on the same inputs, pure.

inputs: what an evaluation runs on (audited events, a golden file, approved reviews); run: each input
through ``streams.pipeline.process``, as the worker runs it, usage records marked ``eval``; scores:
the figures of each version (schema-valid rate, re-asks, agreement, cost, latency); thresholds: the
agent's ``evaluation`` block; table: the side-by-side report. Kafka is read in streams/kafka/eval_inputs.py
and the command is streams/cli/eval.py.
"""
