"""The root of the error tree."""

from __future__ import annotations


class KeelError(Exception):
    reason = "internal"
    retriable = False
