"""The unit tests mirror the packages (tests/unit/<package>/...); this file puts tests/unit on sys.path
(pytest's prepend import mode) so that every test imports the shared fakes (fakes.py, kafka_stand_in.py)."""
