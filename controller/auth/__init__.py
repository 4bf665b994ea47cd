"""Console and API authentication: users, roles, web sessions, API tokens, CSRF and the
audit log."""
