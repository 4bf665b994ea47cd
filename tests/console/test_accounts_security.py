"""Password policy, session lifetimes, disabled users and API token expiry and revocation,
on a real controller (等保 level 3)."""

from __future__ import annotations

import pathlib
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from console.harness import PASSWORD, Console
from sqlalchemy import select, update
from typer.testing import CliRunner

from controller.app.cli import app
from controller.app.daemon import ControllerConfig
from controller.auth import passwords
from controller.auth.accounts import create_api_token, get_user
from controller.common.cli_common import open_db
from controller.common.security import SecurityPolicy
from controller.db.models import ApiToken, ConsoleUser, WebSession

NEW_PASSWORD = "Another-Good-pw7"


@pytest.mark.parametrize(
    ("password", "username", "english", "chinese"),
    [
        ("Sh0rt!pw", "li", "at least 12 characters", "至少需要 12 个字符"),
        ("Zhang.Wei.2026", "zhang.wei", "must not be or contain the user name", "用户名"),
        ("Password123!", "li", "most common passwords", "最常见"),
        ("1qaz2wsx!!!!!!", "li", "most common passwords", "最常见"),
        ("lowercaseonly12", "li", "at least 3 of", "至少 3 类"),
        ("alllowercase words", "li", "passphrase of at least 20", "长口令"),
    ],
)
def test_weak_passwords_are_refused_saying_why_in_both_languages(
    password: str, username: str, english: str, chinese: str
) -> None:
    with pytest.raises(passwords.PolicyError) as caught:
        passwords.check_policy(password, username)
    assert english in str(caught.value) and chinese in str(caught.value)


@pytest.mark.parametrize(
    "password",
    ["Tr1cky-Pass!", "correct horse battery", "Two Classes Only Here", "长城长城长城长城Abc1"],
)
def test_good_passwords_pass(password: str) -> None:
    assert passwords.check_policy(password, "li") == password


def _client(console: Console) -> aiohttp.ClientSession:
    """A client that keeps the session cookie, as a browser does."""
    return console.session(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def _sign_in(
    http: aiohttp.ClientSession, console: Console, user: str, password: str = PASSWORD
) -> str:
    async with http.post(
        f"{console.base}/api/v1/session", json={"username": user, "password": password}
    ) as r:
        assert r.status == 200, await r.text()
        return str((await r.json())["csrf"])


async def _session_status(http: aiohttp.ClientSession, console: Console) -> tuple[int, str]:
    async with http.get(f"{console.base}/api/v1/session") as r:
        return r.status, (await r.json()).get("error", "")


def _age_sessions(console: Console, username: str, **back: timedelta) -> None:
    """Move the user's sessions' stored times into the past."""
    now = datetime.now(UTC)
    with console.db() as s:
        user = get_user(s, username)
        values = {f"{field}_at": now - delta for field, delta in back.items()}
        s.execute(update(WebSession).where(WebSession.user_id == user.id).values(**values))
        s.commit()


async def test_api_refuses_a_weak_password_with_the_rule(console: Console) -> None:
    async with console.session(headers=console.bearer("admin")) as http:
        body = {"username": "wang.fang", "role": "inspector", "password": "wang.fang2026"}
        async with http.post(f"{console.base}/api/v1/users", json=body) as r:
            error = (await r.json())["error"]
            assert r.status == 400 and "user name" in error and "用户名" in error


async def test_idle_sessions_expire_after_30_minutes(console: Console) -> None:
    async with _client(console) as http:
        await _sign_in(http, console, "inspector")
        _age_sessions(console, "inspector", last_seen=timedelta(minutes=29))
        assert (await _session_status(http, console))[0] == 200  # and this touches it
        _age_sessions(console, "inspector", last_seen=timedelta(minutes=31))
        status, error = await _session_status(http, console)
        assert status == 401 and "30 min idle" in error and "未操作" in error


async def test_a_busy_session_still_ends_after_12_hours(console: Console) -> None:
    async with _client(console) as http:
        await _sign_in(http, console, "scheduler")
        _age_sessions(console, "scheduler", created=timedelta(hours=12, minutes=1))
        status, error = await _session_status(http, console)
        assert status == 401 and "limit of 12 h" in error and "最长时限" in error


async def test_changing_a_password_signs_out_the_users_other_sessions(
    console: Console, controller_config: ControllerConfig
) -> None:
    async with _client(console) as desk, _client(console) as laptop:
        csrf = await _sign_in(desk, console, "technician")
        await _sign_in(laptop, console, "technician")
        url = f"{console.base}/api/v1/session/password"
        headers = {"X-CSRF-Token": csrf}
        weak = {"current": PASSWORD, "new": "short"}
        async with desk.put(url, json=weak, headers=headers) as r:
            assert r.status == 400 and "12" in (await r.json())["error"]
        wrong = {"current": "not it", "new": NEW_PASSWORD}
        async with desk.put(url, json=wrong, headers=headers) as r:
            assert r.status == 400 and "current password is wrong" in (await r.json())["error"]
        body = {"current": PASSWORD, "new": NEW_PASSWORD}
        async with desk.put(url, json=body, headers=headers) as r:
            assert r.status == 200, await r.text()
            assert (await r.json())["other_sessions_ended"] == 1
        assert (await _session_status(desk, console))[0] == 200
        assert (await _session_status(laptop, console))[0] == 401
    # An administrator's reset from the command line ends every session.
    async with _client(console) as desk:
        await _sign_in(desk, console, "technician", NEW_PASSWORD)
        state = str(controller_config.state_dir)
        out = CliRunner().invoke(
            app,
            ["user", "passwd", "technician", "--password-stdin", "--state-dir", state],
            input=PASSWORD + "\n",
        )
        assert out.exit_code == 0 and "session(s) signed out" in out.output, out.output
        assert (await _session_status(desk, console))[0] == 401


async def test_a_disabled_user_is_signed_out_and_refused_until_enabled(console: Console) -> None:
    with console.db() as s:
        token = create_api_token(s, "locky", "sync", timedelta(days=1))
    async with _client(console) as http, console.session(headers=console.bearer("admin")) as admin:
        await _sign_in(http, console, "locky")
        async with admin.post(f"{console.base}/api/v1/users/locky/disable") as r:
            assert r.status == 200 and (await r.json())["disabled"] is True
        assert (await _session_status(http, console))[0] == 401  # its session has ended
        async with http.post(
            f"{console.base}/api/v1/session", json={"username": "locky", "password": PASSWORD}
        ) as r:
            error = (await r.json())["error"]
            assert r.status == 403 and "disabled by an administrator" in error
        # A wrong password is answered as for anyone: disabling tells a guesser nothing.
        async with http.post(
            f"{console.base}/api/v1/session", json={"username": "locky", "password": "guess"}
        ) as r:
            assert r.status == 401
        bearer = {"Authorization": f"Bearer {token}"}
        async with http.get(f"{console.base}/api/v1/lessons", headers=bearer) as r:
            assert r.status == 401 and "disabled" in (await r.json())["error"]
        async with admin.post(f"{console.base}/api/v1/users/admin/disable") as r:
            assert r.status == 400  # not yourself
        async with admin.post(f"{console.base}/api/v1/users/locky/enable") as r:
            assert r.status == 200 and (await r.json())["disabled"] is False
        await _sign_in(http, console, "locky")
        async with admin.get(f"{console.base}/api/v1/audit") as r:
            actions = {row["action"] for row in await r.json()}
            assert "POST /api/v1/users/{username}/disable" in actions


async def test_api_tokens_expire_and_can_be_revoked(console: Console) -> None:
    with console.db() as s:
        token = create_api_token(s, "inspector", "report", SecurityPolicy().api_token_lifetime)
        row = s.scalar(select(ApiToken).where(ApiToken.label == "report"))
        assert row is not None and row.expires_at is not None
        token_id = row.token_hash[:12]
    bearer = {"Authorization": f"Bearer {token}"}
    async with console.session(headers=console.bearer("admin")) as admin:
        async with admin.get(f"{console.base}/api/v1/lessons", headers=bearer) as r:
            assert r.status == 200
        async with admin.get(f"{console.base}/api/v1/tokens?user=inspector") as r:
            states = {t["id"]: t["state"] for t in await r.json()}
            assert states[token_id] == "active"
        with console.db() as s:
            s.execute(
                update(ApiToken)
                .where(ApiToken.label == "report")
                .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
            s.commit()
        async with admin.get(f"{console.base}/api/v1/lessons", headers=bearer) as r:
            assert r.status == 401 and "expired" in (await r.json())["error"]
        with console.db() as s:
            s.execute(update(ApiToken).where(ApiToken.label == "report").values(expires_at=None))
            s.commit()
        async with admin.delete(f"{console.base}/api/v1/tokens/{token_id}") as r:
            assert r.status == 200 and (await r.json())["state"] == "revoked"
        async with admin.get(f"{console.base}/api/v1/lessons", headers=bearer) as r:
            assert r.status == 401 and "revoked" in (await r.json())["error"]
        async with admin.delete(f"{console.base}/api/v1/tokens/00000000") as r:
            assert r.status == 404


def test_cli_disables_users_and_lists_and_revokes_tokens(tmp_path: pathlib.Path) -> None:
    state = ["--state-dir", str(tmp_path)]
    run = CliRunner().invoke
    out = run(app, ["user", "add", "zhao", "--role", "inspector", "--no-password", *state])
    assert out.exit_code == 0, out.output
    out = run(app, ["token", "create", "zhao", "--label", "sync", "--valid", "7d", *state])
    assert out.exit_code == 0 and out.output.startswith("cbt_"), out.output
    out = run(app, ["token", "create", "zhao", "--valid", "1000d", *state])
    assert out.exit_code == 2 and "api_token_lifetime" in out.output
    out = run(app, ["token", "list", "zhao", *state])
    token_id = out.output.split()[0]
    assert "active" in out.output and "sync" in out.output
    out = run(app, ["token", "revoke", token_id, *state])
    assert out.exit_code == 0 and "revoked" in out.output, out.output
    out = run(app, ["user", "disable", "zhao", *state])
    assert out.exit_code == 0 and "disabled" in out.output
    out = run(app, ["user", "list", *state])
    assert "disabled" in out.output
    out = run(app, ["user", "enable", "zhao", *state])
    assert out.exit_code == 0
    out = run(app, ["user", "disable", "nobody", *state])
    assert out.exit_code == 2 and "no user 'nobody'" in out.output
    with open_db(tmp_path)() as s:
        user = s.scalar(select(ConsoleUser).where(ConsoleUser.username == "zhao"))
        assert user is not None and user.disabled_at is None
