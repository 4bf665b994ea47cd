"""Open lessons for many viewers (公开课 / 观摩直播): a lesson published as HLS from the lead
classroom's own encoded packets, served by nginx, watched under signed or intranet links."""
