"""The agent trusts its controller's HTTPS only through the certificate pinned at enrolment,
and never uploads over plain HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import pathlib
import ssl

import aiohttp
import pytest
from helpers import controller_base, issue_token

from controller.app.daemon import ControllerDaemon
from controller.tls.ca import ensure_server_certificate
from edge_agent.enrol import enrol
from edge_agent.errors import InsecureUpload
from edge_agent.identity import Identity
from edge_agent.uploads.client import UploadApi
from edge_agent.uploads.journal import UploadJournal
from edge_agent.uploads.worker import Uploader
from protocols.tls import pinned_client_context


async def _enrolled(controller: ControllerDaemon, state: pathlib.Path) -> Identity:
    token = issue_token(controller.config.state_dir, "city-101")
    return await enrol(f"tcp://127.0.0.1:{controller.config.control_port}", token, state)


async def test_enrolment_pins_the_controllers_ca_and_keeps_it(
    controller: ControllerDaemon, tmp_path: pathlib.Path
) -> None:
    identity = await _enrolled(controller, tmp_path / "agent")
    assert controller.certificate is not None
    assert identity.controller_ca_pem == controller.certificate.trust_pem
    assert Identity.load(tmp_path / "agent").controller_ca_pem == identity.controller_ca_pem


async def test_the_agent_refuses_a_controller_with_another_certificate(
    controller: ControllerDaemon, tmp_path: pathlib.Path
) -> None:
    identity = await _enrolled(controller, tmp_path / "agent")
    impostor = ensure_server_certificate(tmp_path / "impostor", ["127.0.0.1"])
    base = controller_base(controller)
    async with aiohttp.ClientSession() as http:
        wrong = UploadApi(
            http, base, "city-101", "t" * 64, pinned_client_context(impostor.trust_pem)
        )
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await wrong.open("L1", "teacher/t-00001.mp4", 1, "0" * 64)
        # The same call with the pin from enrolment reaches the controller (which then
        # refuses the made-up token): the certificate alone made the difference.
        right = UploadApi(
            http, base, "city-101", "t" * 64, pinned_client_context(identity.controller_ca_pem)
        )
        with pytest.raises(Exception, match="HTTP 401"):
            await right.open("L1", "teacher/t-00001.mp4", 1, "0" * 64)


def test_an_http_upload_url_is_refused_before_any_connection() -> None:
    async def attempt() -> None:
        async with aiohttp.ClientSession() as http:
            ctx = ssl.create_default_context()
            with pytest.raises(InsecureUpload, match="must be reached over https://"):
                UploadApi(http, "http://127.0.0.1:7780", "city-101", "t", ctx)
            with pytest.raises(InsecureUpload, match="enrol it again"):
                UploadApi(http, "https://127.0.0.1:7780", "city-101", "t", None)

    asyncio.run(attempt())


async def test_the_uploader_holds_files_for_an_http_controller(tmp_path: pathlib.Path) -> None:
    """A plain-HTTP URL from the controller: nothing is sent, and the error says why."""
    journal = UploadJournal(tmp_path / "uploads.sqlite3")
    data = tmp_path / "t-00001.mp4"
    data.write_bytes(b"segment")
    journal.enqueue("L1", "teacher/t-00001.mp4", data, 7, hashlib.sha256(b"segment").hexdigest())
    ctx = ssl.create_default_context()
    uploader = Uploader(journal, "c1", lambda: ("http://127.0.0.1:9", "t"), controller_tls=ctx)
    await uploader.start()
    try:
        for _ in range(100):
            if uploader.last_error:
                break
            await asyncio.sleep(0.02)
    finally:
        await uploader.stop()
    assert "https://" in uploader.last_error and uploader.parts_sent == 0
