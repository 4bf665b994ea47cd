"""A small county for the timetable tests: two schools, four classrooms, a term."""

from __future__ import annotations

SETUP = """
[[school]]
id = "city"
uplink_kbps = 10000
bells = [["08:00", "08:40"], ["08:50", "09:30"], ["09:40", "10:20"]]

[[school]]
id = "village"
uplink_kbps = 5000
bells = [["08:00", "08:40"], ["08:50", "09:30"], ["09:40", "10:20"]]

[[teacher]]
id = "t-wang"
school = "city"

[[teacher]]
id = "t-li"
school = "city"

[[term]]
id = "spring"
start = 2026-03-02
end = 2026-03-29
holidays = [2026-03-10]
makeup = [{ date = 2026-03-14, runs_as = "tuesday" }]

[[pairing]]
id = "p1"
supporting = "city"
supported = ["village"]
forms = ["synchronous", "research", "delivery"]
start = 2026-03-01
end = 2026-07-31

[[series]]
term = "spring"
kind = "synchronous"
lead = "city-101"
receivers = ["village-201"]
teacher = "t-wang"
subject = "music"
weekday = "tuesday"
period = 2
pairing = "p1"
exceptions = [2026-03-24]
"""
ROOMS = {"city-101": "city", "city-102": "city", "village-201": "village", "village-202": "village"}
TEACHER_ROLES = [
    {"name": "teacher", "kind": "camera", "role": "teacher", "bitrate": 2_000_000},
    {"name": "student", "kind": "camera", "role": "student", "bitrate": 600_000},
    {"name": "mic", "kind": "microphone", "role": "room", "bitrate": 48_000},
]


# UTF-8 rows with one row in GBK: a mixed file, so that row is reported by number.
BAD_CSV = (
    (
        b"date,period,kind,lead,receivers,teacher,subject,title\n"
        + "2026-03-04,1,synchronous,city-101,village-201,t-wang,音乐,ok\n".encode()
        + b"2026-13-40,1,synchronous,city-101,village-201,t-wang,music,bad date\n"
        b"2026-03-05,1,synchronous,nowhere-9,village-201,t-wang,music,unknown room\n"
        b"2026-03-04,1,synchronous,city-102,village-201,t-li,art,double booked\n"
    )
    + "2026-03-06,2,synchronous,city-101,village-201,t-wang,音乐,gbk\n".encode("gbk")
    + (b"2026-03-06,3,delivery,city-102,village-201,t-li,art,ok too\n")
)
