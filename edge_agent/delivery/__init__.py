"""Delivery lessons on demand (专递课堂 by video): the room plays a library recording."""
