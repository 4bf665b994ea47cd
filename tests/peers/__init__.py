"""Real network peers (cameras, PTZ heads) that tests run against."""
