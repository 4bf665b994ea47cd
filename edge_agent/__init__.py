"""classbridge edge agent: runs a recording classroom (录播教室)."""

__version__ = "0.1.0"
