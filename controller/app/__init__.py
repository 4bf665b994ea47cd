"""The controller assembled: its HTTP app, its daemon and its command line."""
