"""Monthly and term reports (月报、学期报表) written on schedule and kept in storage."""
