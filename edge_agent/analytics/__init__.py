"""Lesson analytics on the classroom PC (课堂分析): who talked, second by second."""
