"""The web console: static pages served by the controller; their data comes from the
JSON API behind the auth middleware."""
