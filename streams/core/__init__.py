"""The vocabulary every other package speaks: domain values and outcomes, the error tree (``KeelError``),
the schema catalogue and wire format, settings, config files, the review item and alert values, and the
ports (Protocols: clock, model, alert sink) in core/ports/.

May import: the standard library, pydantic, fastavro, orjson, yaml. Nothing else of streams.
"""
