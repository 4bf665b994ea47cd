"""The emergency switch (线下线上瞬时切换): a school's or the county's lessons online only."""
