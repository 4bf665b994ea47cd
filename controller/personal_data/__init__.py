"""Personal data (个人信息) of a teacher or a class: export it, or erase their recordings."""
