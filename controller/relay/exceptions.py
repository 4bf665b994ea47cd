"""Errors of the built-in relay.

- ``controller.relay.room.SignallingError`` (a ValueError): an offer the relay cannot
  answer; the message says which part and why.
- ``RelayUnavailable`` (a ConnectionError): the relay process is down, restarting, or did
  not answer in time; the caller tries again later (agents re-offer on their own).
"""

from __future__ import annotations


class RelayUnavailable(ConnectionError):
    """The relay process cannot answer now; the message says why."""
