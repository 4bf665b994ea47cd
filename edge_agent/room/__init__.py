"""The room's outputs (课堂输出): what the people in a classroom hear and see.

- speakers, the playout buffers and the mixer: the remote classrooms' sound;
- displays and their layouts: the panel and the teacher's mid-screen;
- floor control (课堂互动): which receiving room the lead has called on.
"""
