"""Backing up and restoring a controller's state: database, keys, TLS files, settings."""
