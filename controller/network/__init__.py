"""Network profiles and the live bandwidth view."""
