"""Prometheus metrics of the controller (``GET /api/v1/metrics``) and its Grafana dashboard."""
