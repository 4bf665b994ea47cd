"""Lesson review (评课): inspectors' notes pinned to moments of a lesson, and scores against
the county's rubric."""
