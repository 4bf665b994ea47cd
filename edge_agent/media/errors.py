"""Errors of the agent's media layer."""


class EncoderUnavailable(ValueError):
    """The encoder the profile asks for cannot be opened on this box."""
