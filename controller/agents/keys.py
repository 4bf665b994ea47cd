"""The controller's CURVE key pair and the book of enrolled agent keys."""

from __future__ import annotations

import logging
import pathlib

import zmq

from protocols.private_files import private_dir, write_private

log = logging.getLogger(__name__)


class ServerKeys:
    """The controller's long-lived CURVE key pair, kept in its state directory."""

    def __init__(self, public: bytes, secret: bytes) -> None:
        self.public = public
        self.secret = secret

    @classmethod
    def load_or_create(cls, state_dir: pathlib.Path) -> ServerKeys:
        """Read the key pair, making it on first use (mode 0600)."""
        path = state_dir / "controller.curve"
        if path.exists():
            public, secret = path.read_bytes().split(b"\n")[:2]
            return cls(public, secret)
        public, secret = zmq.curve_keypair()
        private_dir(state_dir)
        # Created 0600 (O_EXCL) and then renamed: never readable by others, even briefly.
        write_private(path, public + b"\n" + secret + b"\n")
        return cls(public, secret)


class KeyBook:
    """Enrolled agent public keys; consulted by the ZAP handler on every connection."""

    def __init__(self) -> None:
        self._by_key: dict[str, str] = {}
        self.denied = 0

    def load(self, pairs: dict[str, str]) -> None:
        """Replace the book with ``{public_key_z85: classroom_id}``."""
        self._by_key = dict(pairs)

    def add(self, public_key: str, classroom_id: str) -> None:
        """Admit a newly enrolled key (replacing that classroom's previous key)."""
        for key, cid in list(self._by_key.items()):
            if cid == classroom_id:
                del self._by_key[key]
        self._by_key[public_key] = classroom_id

    def classroom_for(self, public_key: str) -> str | None:
        """The classroom enrolled with this key, if any."""
        return self._by_key.get(public_key)

    def callback(self, domain: str, key: bytes) -> bool:
        """ZAP credentials callback: only enrolled keys may connect."""
        text = key.decode("ascii", "replace")
        if text in self._by_key:
            return True
        self.denied += 1
        log.warning("refused control connection from unknown agent key %s…", text[:8])
        return False


class AnyKey:
    """ZAP credentials callback for the enrolment socket: any key may present a token."""

    def callback(self, domain: str, key: bytes) -> bool:
        """Allow the CURVE handshake; the token is checked on the message itself."""
        return True
