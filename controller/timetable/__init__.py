"""The term timetable (大课表): model helpers, scheduling rules, import, export, reports."""
