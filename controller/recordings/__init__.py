"""Recordings: uploads, intake, the catalogue, search and retention."""
