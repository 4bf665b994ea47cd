"""Staged agent updates on the classroom PC: install beside, switch, prove, roll back."""
