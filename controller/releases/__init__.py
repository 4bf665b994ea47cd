"""Staged agent updates: signed releases, rings, rollouts (controller side)."""
