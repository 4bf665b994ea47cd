"""Errors of the recorder."""


class RecordingError(OSError):
    """A segment could not be written; names the path and the cause."""
