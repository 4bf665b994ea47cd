"""Schema-driven fuzzing of the controller's JSON API with schemathesis.

A real controller runs in a background thread (its own event loop) with a small county
(timetable, lessons, a network profile, an alert); the served OpenAPI document is loaded
from it, and every operation is called with generated data as an admin (API token):
valid data, valid data aimed at objects that exist, and invalid data. No answer may be a
5xx; valid data must get documented status codes and response schemas. The agents'
upload routes need a classroom's upload token, which the admin token is not: they are
fuzzed too and must answer 401 (never 500).
"""

from __future__ import annotations

import asyncio
import pathlib
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest
import requests

st = pytest.importorskip("schemathesis")
validate = pytest.importorskip("openapi_spec_validator").validate

from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from timetable_fixtures import ROOMS, SETUP  # noqa: E402

from controller.agents.keys import ServerKeys  # noqa: E402
from controller.agents.registry import add_classroom  # noqa: E402
from controller.app.daemon import ControllerConfig, ControllerDaemon  # noqa: E402
from controller.auth.accounts import add_user, create_api_token  # noqa: E402
from controller.db.models import AlertState, Lesson  # noqa: E402
from controller.db.session import database_url, make_engine, migrate, sessions  # noqa: E402
from controller.network.profiles import parse_profile_text, put_profile  # noqa: E402
from controller.timetable.setup import apply_setup, expand_term  # noqa: E402

# About 70 s here on two busy workers; a slower machine must not turn that into a timeout.
pytestmark = pytest.mark.timeout(360)

T = TypeVar("T")
MAX_EXAMPLES = 25
SEED = 20261123
UPLOAD_PREFIX = "/api/v1/uploads"
VALID_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
INVALID_CHECKS = [not_a_server_error]
PROFILE = """
name = "county-std"
uplink_kbps = 20000
classroom_cap_kbps = 8200

[[ladder]]
name = "720p"
width = 1280
height = 720
kbps = 2000
"""


class LiveController:
    """A controller daemon serving from a thread of its own, so that synchronous
    schemathesis/requests calls can reach it."""

    def __init__(self, config: ControllerConfig) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.daemon = ControllerDaemon(config)

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    def __enter__(self) -> str:
        self._thread.start()
        self._call(self.daemon.start())
        assert self.daemon.http is not None
        return f"https://127.0.0.1:{self.daemon.http.port}"

    def __exit__(self, *exc: object) -> None:
        try:
            self._call(self.daemon.stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()


def _seed_county(state: pathlib.Path) -> tuple[str, dict[str, str]]:
    """Classrooms, a term with lessons, a network profile, an alert, an admin token;
    answers the token and the ids of objects that exist, by path parameter name."""
    url = database_url(state)
    migrate(url)
    keys = ServerKeys.load_or_create(state)
    with sessions(make_engine(url))() as s:
        add_user(s, "fuzz-admin", "admin", None)
        token = create_api_token(s, "fuzz-admin", "fuzz")
        for cid, school in ROOMS.items():
            add_classroom(s, cid, cid, school, keys.public)
        apply_setup(s, SETUP)
        expand_term(s, "spring")
        put_profile(s, parse_profile_text(PROFILE, "fuzz.toml"), "fuzz.toml")
        now = datetime.now(UTC)
        alert = AlertState(
            classroom_id="city-101",
            key="cpu_high",
            message="CPU at 97%",
            first_seen=now,
            last_seen=now,
            active=True,
        )
        s.add(alert)
        s.commit()
        lesson = s.query(Lesson).order_by(Lesson.start_at).first()
        assert lesson is not None
        known = {
            "lesson": lesson.id,
            "name": "county-std",
            "alert": str(alert.id),
            "username": "fuzz-admin",
            "classroom": "city-101",
            "id": "city-101",
        }
    return token, known


@pytest.fixture
def live(
    controller_config: ControllerConfig,
) -> Iterator[tuple[str, str, dict[str, str], str]]:
    """A running, seeded controller; yields (base URL, admin API token, known ids, the
    county CA file to verify it with)."""
    state: pathlib.Path = controller_config.state_dir
    state.mkdir(parents=True, exist_ok=True)
    token, known = _seed_county(state)
    with LiveController(controller_config) as base:
        yield base, token, known, str(state / "tls" / "ca.pem")


def _run_cases(strategy: Any, check: Callable[[Any], None]) -> None:
    """Run ``check`` on generated cases: deterministic and bounded."""

    @seed(SEED)
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        check(case)

    run()


def _fuzz_operation(
    operation: Any, base: str, headers: dict[str, str], known: dict[str, str], ca: str
) -> None:
    """Valid data, valid data on existing objects, then invalid data, for one operation."""

    def valid(case: Any) -> None:
        if operation.path.startswith(UPLOAD_PREFIX):
            response = case.call(base_url=base, headers=headers, verify=ca)
            assert response.status_code == 401, (
                f"{case.method} {case.formatted_path}: {response.status_code} {response.text}"
            )
            return
        case.call_and_validate(base_url=base, headers=headers, checks=VALID_CHECKS, verify=ca)

    def invalid(case: Any) -> None:
        case.call_and_validate(base_url=base, headers=headers, checks=INVALID_CHECKS, verify=ca)

    _run_cases(operation.as_strategy(), valid)
    names = {p.name for p in operation.path_parameters}
    if names and names <= known.keys():
        ids = {n: known[n] for n in names}
        _run_cases(operation.as_strategy(path_parameters=ids), valid)
    _run_cases(operation.as_strategy(generation_mode=GenerationMode.NEGATIVE), invalid)


def test_every_operation_survives_generated_data(
    live: tuple[str, str, dict[str, str], str],
) -> None:
    """Every documented operation, fuzzed as an admin: no 5xx, documented answers."""
    base, token, known, ca = live
    headers = {"Authorization": f"Bearer {token}"}
    document = requests.get(f"{base}/api/v1/openapi.json", timeout=10, verify=ca).json()
    validate(document)  # a valid OpenAPI 3.1 document, or OpenAPIValidationError
    assert {p for p in document["paths"] if p.startswith(UPLOAD_PREFIX)}, "uploads undocumented"
    schema = st.openapi.from_dict(document)
    started = time.monotonic()
    failures: list[str] = []
    count = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        count += 1
        try:
            _fuzz_operation(operation, base, headers, known, ca)
        except (AssertionError, BaseExceptionGroup) as err:  # collect all, then report
            failures.append(f"== {operation.method.upper()} {operation.path}\n{err}"[:3000])
    elapsed = time.monotonic() - started
    assert count > 20, f"only {count} operations in the document"
    assert not failures, f"{len(failures)} operations failed:\n\n" + "\n\n".join(failures)
    # How long it took is printed, not asserted: a timed unit test fails on a busy machine
    # and proves nothing about speed (pytest-timeout still ends a hung run).
    print(f"fuzzed {count} operations in {elapsed:.0f} s")
