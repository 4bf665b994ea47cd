"""TLS errors of the controller.

Hierarchy::

    ControllerError
    └── TlsSetupError   the certificate or key cannot be made, read or loaded
"""

from __future__ import annotations

from controller.common.errors import ControllerError


class TlsSetupError(ControllerError):
    """The controller cannot serve HTTPS with what it has; the message says what to fix."""
