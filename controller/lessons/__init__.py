"""Lessons: scheduling, states, the orchestrator, overrides and patrol."""
