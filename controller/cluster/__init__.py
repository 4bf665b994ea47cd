"""Several controllers on one PostgreSQL: one orchestrator leader, commands routed
between controllers (LISTEN/NOTIFY), and the endpoints agents fail over between."""
