"""Errors of the storage layer."""


class StitchError(ValueError):
    """Segments that cannot be remuxed into one file; names the file and why."""
