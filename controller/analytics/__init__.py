"""Lesson analytics (课堂分析): S-T (Student–Teacher) analysis from the agents' talk timelines."""
