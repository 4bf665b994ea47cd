"""Security figures for ``scripts/security-check``: one module per thing measured."""
