"""HTTPS for the controller: the county CA (ca.py), the listener's certificate and context
(server.py), which plain requests a trusted proxy may forward plus HSTS (policy.py), the
``check_tls`` probe (probe.py) and the CLI bits (cli.py)."""
