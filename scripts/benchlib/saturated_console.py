"""bench-capacity's console figure: a whole controller, its console timed in Chromium while
its own built-in relay process is saturated by the load generator's lessons.

The controller is real (``relay_host --controller-state``: console and API over HTTPS,
orchestrator, agent hub, heartbeat writer, SQLite) and holds what a county's holds: a term
of 10,000 lessons for 500 classrooms (filled as bench-console does). The load's lessons are
signalled to that controller's ``RelayProcess`` through relay_host's small front, so the
relay worker that burns the CPU is the controller's own child. A signed-in Chromium clicks
through the console's pages in a loop; a page's time runs from the click to the page
marking its data rendered, as in bench-console.
"""

from __future__ import annotations

import asyncio
import pathlib

from benchlib.capacity_backends import Builtin, Gen
from benchlib.console_browser import CHROMIUM, ConsoleClicker, add_console_user
from benchlib.county_term import fill_term
from benchlib.rig import LessonRig
from protocols.tls import pinned_client_context

USER, PASSWORD = "county-admin", "bench console password"


class ControllerBuiltin(Builtin):
    """The built-in relay inside a whole controller, with a county's term in its database."""

    name = "builtin-controller"

    def __init__(self, gen: Gen, root: pathlib.Path, lessons: int, classrooms: int) -> None:
        super().__init__(gen)
        self.rig = LessonRig(root)
        self.term_lessons, self.classrooms = lessons, classrooms
        self.stored = 0

    @property
    def ping_url(self) -> str:
        """The dashboard's data, as the console asks for it (authenticated, over HTTPS)."""
        return f"{self.rig.api}/dashboard"

    async def start(self) -> None:
        """Fill the database, make the console user and an API token, start the controller."""
        rig = self.rig
        rig.controller_state.mkdir(parents=True, exist_ok=True)
        self.stored = await asyncio.to_thread(
            fill_term, rig.controller_state, self.term_lessons, self.classrooms
        )
        add_console_user(rig, USER, "admin", PASSWORD)
        rig.controller_cli("user", "add", "rig", "--role", "admin", "--no-password")
        token = rig.controller_cli("token", "create", "rig").stdout.strip()
        self.host_args = [
            "--controller-state",
            str(rig.controller_state),
            "--http-port",
            str(rig.http_port),
            "--control-port",
            str(rig.port),
        ]
        await super().start()
        self.ping_headers = {"Authorization": f"Bearer {token}"}
        self.ping_ssl = pinned_client_context(rig.trust_pem)


def console_clicker(backend: ControllerBuiltin) -> ConsoleClicker:
    """Chromium signed in to the backend's controller as its console user."""
    return ConsoleClicker(backend.rig, USER, PASSWORD)


def chromium_missing() -> str:
    """Why the console figure cannot be taken here, or "" if it can."""
    return "" if CHROMIUM.exists() else f"no Chromium at {CHROMIUM}; apt-get install chromium"
