"""Control-header keys for tests (streams/contracts/control.py): one that signs, and an older one still accepted."""

from streams.contracts.control import ControlKeys

KEYS = ControlKeys("k2", {"k2": b"k2-secret-for-tests-0123456789", "k1": b"k1-secret-for-tests-0123456789"})
OLD_KEYS = ControlKeys("k1", {"k1": b"k1-secret-for-tests-0123456789"})  # a process before the rotation
