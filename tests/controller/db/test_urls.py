"""Database URLs: spelled for psycopg 3, other engines refused, passwords never shown."""

from __future__ import annotations

import pytest

from controller.db.urls import hide_password, is_postgresql, normalise


def test_a_bare_postgresql_url_gets_psycopg_3() -> None:
    assert normalise("postgresql://u:p@h:5432/d") == "postgresql+psycopg://u:p@h:5432/d"
    assert normalise("postgres://u:p@h/d") == "postgresql+psycopg://u:p@h/d"
    assert normalise("postgresql+psycopg://u:p@h/d") == "postgresql+psycopg://u:p@h/d"
    assert normalise("sqlite:////var/lib/c.sqlite3") == "sqlite:////var/lib/c.sqlite3"
    assert is_postgresql("postgresql+psycopg://u@h/d") and not is_postgresql("sqlite:///x")


def test_other_engines_and_nonsense_are_refused_without_the_password() -> None:
    with pytest.raises(ValueError, match=r"mysql://a:\*\*\*@h/d.*not 'mysql'") as err:
        normalise("mysql://a:hunter2@h/d")
    assert "hunter2" not in str(err.value)
    with pytest.raises(ValueError, match="not a database URL") as err:
        normalise("hunter2 is not a url")
    assert hide_password("postgresql://u:hunter2@h:5/d") == "postgresql://u:***@h:5/d"
    assert "hunter2" not in hide_password("postgresql+psycopg://u:hunter2@[::1:5/d")
