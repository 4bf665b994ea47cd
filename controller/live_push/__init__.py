"""A lesson's live push targets (直播推流): set per lesson, pushed by the lead's agent."""
