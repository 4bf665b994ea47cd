"""Every audit row to the county's log collector (日志采集) as RFC 5424 syslog.

``--audit-syslog udp://host:port`` sends datagrams to a collector; ``unix:/dev/log`` hands
them to the local journald/rsyslog. The row's fields travel as structured data, e.g.::

    <86>1 2026-03-02T01:00:00.123456+00:00 ctl classbridge 4242 audit
    [classbridge@32473 id="17" user="li.wei" role="technician" action="play_recording"
    target="/api/v1/recordings/L1/city-101/teacher.mp4" remote="10.1.2.3"] {"status": 206}

(one line). The collector gets each row once it is committed; the database keeps it too.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from controller.auth.audit import AUDIT_LOGGER

# 32473 is the private enterprise number RFC 5612 sets aside for examples and documentation;
# a county with its own number can ask for it to be changed.
SD_ID = "classbridge@32473"
APP_NAME = "classbridge"
FACILITY = logging.handlers.SysLogHandler.LOG_AUTHPRIV
SD_FIELDS = (("id", "id"), ("user", "username"), ("role", "role"), ("action", "action"))
SD_FIELDS_TAIL = (("target", "target"), ("remote", "remote"))


@dataclass(frozen=True)
class SyslogTarget:
    """Where audit rows go: a UDP collector or a local Unix datagram socket."""

    address: str | tuple[str, int]
    socktype: socket.SocketKind

    @classmethod
    def parse(cls, text: str) -> SyslogTarget:
        """``udp://host:port`` or ``unix:/path``; ValueError says what is wrong."""
        if text.startswith("unix:"):
            path = text.removeprefix("unix:").removeprefix("//")
            if not path.startswith("/"):
                raise ValueError(f"--audit-syslog {text!r}: write unix:/dev/log (absolute path)")
            return cls(path, socket.SOCK_DGRAM)
        if text.startswith("udp://"):
            host, sep, port = text.removeprefix("udp://").rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(
                    f"--audit-syslog {text!r}: write udp://HOST:PORT, e.g. udp://10.0.0.5:514"
                )
            return cls((host.strip("[]"), int(port)), socket.SOCK_DGRAM)
        raise ValueError(f"--audit-syslog {text!r}: use udp://HOST:PORT or unix:/dev/log")


def _sd_escape(value: object) -> str:
    """An SD-PARAM value: '"', '\\' and ']' escaped (RFC 5424 §6.3.3)."""
    text = str(value)
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


class Rfc5424Formatter(logging.Formatter):
    """Formats a ``classbridge.audit`` record as an RFC 5424 message, less its ``<PRI>``
    (which SysLogHandler puts in front)."""

    def __init__(self, hostname: str | None = None) -> None:
        super().__init__()
        self._host = (hostname or socket.gethostname() or "-").split(".")[0][:255]

    def format(self, record: logging.LogRecord) -> str:
        """``1 TIMESTAMP HOST APP PROCID MSGID [SD] MSG``."""
        fields: dict[str, Any] = getattr(record, "audit", None) or {}
        stamp = datetime.fromtimestamp(record.created, UTC).isoformat()
        params = " ".join(
            f'{name}="{_sd_escape(fields.get(key, ""))}"'
            for name, key in SD_FIELDS + SD_FIELDS_TAIL
        )
        detail = json.dumps(fields.get("detail", {}), ensure_ascii=False, sort_keys=True)
        return (
            f"1 {stamp} {self._host} {APP_NAME} {record.process or '-'} audit "
            f"[{SD_ID} {params}] {detail}"
        )


class AuditSyslog:
    """Attaches a syslog handler to the audit logger on ``start`` and removes it on
    ``stop``; nothing is opened before ``start``."""

    def __init__(self, target: SyslogTarget, hostname: str | None = None) -> None:
        self._target = target
        self._hostname = hostname
        self._handler: logging.handlers.SysLogHandler | None = None

    def start(self) -> None:
        """Open the socket and forward every audit row from now on."""
        try:
            handler = logging.handlers.SysLogHandler(
                address=self._target.address, facility=FACILITY, socktype=self._target.socktype
            )
        except OSError as err:
            raise OSError(
                f"audit syslog {self._target.address}: cannot open ({err}); is the collector "
                "or journald there?"
            ) from err
        handler.append_nul = False  # RFC 5424 needs no trailing NUL
        handler.setFormatter(Rfc5424Formatter(self._hostname))
        handler.setLevel(logging.INFO)
        audit_log = logging.getLogger(AUDIT_LOGGER)
        # The rows are INFO; the root logger may be quieter, so the audit logger says INFO.
        if audit_log.getEffectiveLevel() > logging.INFO:
            audit_log.setLevel(logging.INFO)
        audit_log.addHandler(handler)
        self._handler = handler

    def stop(self) -> None:
        """Stop forwarding and close the socket."""
        if self._handler is not None:
            logging.getLogger(AUDIT_LOGGER).removeHandler(self._handler)
            self._handler.close()
            self._handler = None
