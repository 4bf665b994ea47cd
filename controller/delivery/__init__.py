"""Delivery lessons on demand (专递课堂 by video): a room plays a library item in class."""
