"""The error raised by the device layer (cameras, microphones, encoders)."""


class DeviceError(Exception):
    """A capture device or encoder that cannot be used as asked.

    The message names the device (or encoder) and says what was wanted and what is on
    offer, so it can be shown to an operator as it is.
    """
