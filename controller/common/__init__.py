"""What every controller feature shares: errors, JSON API helpers, body limits, CLI options."""
