"""Classroom agents: the hub, their messages, presence, health, alerts and enrolment."""
