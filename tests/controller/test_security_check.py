"""scripts/security-check against a real controller: every headline target holds."""

from __future__ import annotations

import pytest
import security_check

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


def test_security_check_meets_every_target() -> None:
    doc = security_check.run()
    met = security_check.verdicts(doc)
    assert all(met.values()), (met, doc)
    assert doc["tls"] is True and doc["unaudited_routes"] == 0
    # The probe saw the 413s and read their limits (one that saw none would report 0).
    assert doc["preauth_body_limit_bytes"] == 1024 * 1024, doc
    assert doc["zmq_max_msg_bytes"] <= 4 * 1024 * 1024 and doc["zmq_limit_enforced"]
