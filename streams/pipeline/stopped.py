"""How a model chain (and its tool loop) says that nothing more is to be tried for an event."""

from __future__ import annotations

from streams.core.errors import KeelError


class ChainStopped(Exception):
    """Nothing more to try: the event takes ``route`` because of ``error``."""

    def __init__(self, route: str, error: KeelError) -> None:
        super().__init__(str(error))
        self.route = route
        self.error = error
