"""Durable, resumable uploads of recordings to the controller's storage."""
