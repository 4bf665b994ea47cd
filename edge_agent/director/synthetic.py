"""Synthetic classroom scenes in grayscale for the director's tests and its bench.

Three views, drawn at any size with every position in fractions of the frame, so a test
can work at 160x90 and the bench at 1280x720 with the same script:

* :meth:`SyntheticClassroom.teacher` — the front of the room seen by the teacher camera:
  a wall, the board, and the teacher (a dark body under a light head) at a given place.
* :meth:`SyntheticClassroom.students` — rows of seated students seen from the front, some
  fidgeting; one of them can be made to stand up by degrees.
* :meth:`SyntheticClassroom.board` — a whiteboard filling the board camera with the first
  ``strokes`` pen strokes of a few lines of "handwriting", and the writing hand at the pen.

Each call returns a new ``uint8`` array with a little sensor noise added, so detectors are
never tested on perfectly clean pictures.
"""

from __future__ import annotations

import cv2
import numpy as np

from edge_agent.director.activity import Gray, u8

# Where the board hangs in the teacher camera's view (fractions: left, top, right, bottom).
TEACHER_BOARD = (0.25, 0.12, 0.75, 0.55)
# The students' seats: rows from the back (top) to the front (bottom), heads per row.
STUDENT_ROWS = (0.36, 0.55, 0.75)
STUDENTS_PER_ROW = 5
CLOTHES = (60, 105, 205, 85, 70)  # none the wall's grey
STROKES_PER_LINE = 24
NOISE_FIELDS = 16


class SyntheticClassroom:
    """Draws the three views of one classroom at ``width`` x ``height``."""

    def __init__(self, width: int, height: int, *, seed: int = 0, noise: float = 2.0) -> None:
        self.width, self.height, self.noise = width, height, noise
        self._rng = np.random.default_rng(seed)
        w, h = width, height
        y = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]
        x = np.linspace(0.0, 1.0, w, dtype=np.float32)[None, :]
        wall = (150 + 30 * y + 10 * np.sin(6 * x)).astype(np.uint8)
        self._front = wall.copy()
        bx0, by0, bx1, by1 = TEACHER_BOARD
        cv2.rectangle(self._front, self._pt(bx0, by0), self._pt(bx1, by1), (70,), -1)
        cv2.rectangle(self._front, self._pt(0.0, 0.8), self._pt(1.0, 1.0), (110,), -1)  # floor
        self._room = (wall * 0.9).astype(np.uint8)
        for ry in STUDENT_ROWS:  # a desk in front of each row
            cv2.rectangle(
                self._room, self._pt(0.05, ry + 0.12), self._pt(0.95, ry + 0.16), (95,), -1
            )
        self._whiteboard = np.full((h, w), 205, dtype=np.uint8)
        cv2.rectangle(self._whiteboard, (0, 0), (w - 1, h - 1), (120,), max(2, w // 100))
        self._ink_px = max(1, round(w / 320))
        self._grain: list[tuple[Gray, Gray]] = []

    def teacher(
        self, x: float | None, *, y: float = 0.62, height: float = 0.5, arm: float = 0.0
    ) -> Gray:
        """The teacher camera's view with the teacher centred at (``x``, ``y``), or absent.

        ``height`` is the teacher's height in frame heights; ``y`` is the body's centre.
        ``arm`` raises the right arm from hanging (0) to pointing up (1): a gesture.
        """
        img = self._front.copy()
        if x is not None:
            body_w, body_h = 0.05, height * 0.8
            top = y - body_h / 2
            cv2.rectangle(
                img,
                self._pt(x - body_w / 2, top),
                self._pt(x + body_w / 2, y + body_h / 2),
                (40,),
                -1,
            )
            head = self._pt(x, top - height * 0.08)
            cv2.circle(img, head, max(1, round(self.height * height * 0.08)), (185,), -1)
            shoulder = (x + body_w / 2, top + 0.02)
            reach = height * 0.3
            hand = (shoulder[0] + reach * 0.6, shoulder[1] + reach * (0.8 - 1.6 * arm))
            cv2.line(img, self._pt(*shoulder), self._pt(*hand), (45,), max(2, self.width // 80))
        return self._noisy(img)

    def students(self, *, rise: float = 0.0, who: int = 7, phase: int = 0) -> Gray:
        """Seated students; student ``who`` is ``rise`` (0 seated … 1 standing) of the way up.

        Students are numbered row by row from the back. ``phase`` shifts a few students a
        little from side to side (fidgeting), as a frame counter would.
        """
        img = self._room.copy()
        head_r = max(1, round(self.height * 0.045))
        for row, ry in enumerate(STUDENT_ROWS):
            for col in range(STUDENTS_PER_ROW):
                index = row * STUDENTS_PER_ROW + col
                cx = 0.12 + col * 0.76 / (STUDENTS_PER_ROW - 1)
                if index % 4 == 1:  # a fidgeting student
                    cx += 0.015 * ((phase + index) % 3 - 1)
                lift = (0.24 + 0.04 * row) * rise if index == who else 0.0  # perspective
                top = ry - lift
                shade = CLOTHES[(row * 2 + col) % len(CLOTHES)]
                cv2.rectangle(
                    img, self._pt(cx - 0.045, top), self._pt(cx + 0.045, ry + 0.14), (shade,), -1
                )
                cv2.circle(img, self._pt(cx, top - 0.05), head_r, (175,), -1)
        return self._noisy(img)

    def board(self, strokes: int, *, hand: bool = True, person: float | None = None) -> Gray:
        """The whiteboard with the first ``strokes`` pen strokes, the hand at the last one.

        ``person`` puts someone (a dark body filling most of the height) in front of the
        board, centred at that fraction of the width.
        """
        img = self._whiteboard.copy()
        tip = self._pt(0.1, 0.15)
        for i in range(strokes):
            start, tip = self.stroke(i)
            cv2.line(img, start, tip, (30,), self._ink_px)
        if hand and strokes > 0:
            r = max(2, round(self.width * 0.015))
            cv2.circle(img, (tip[0] + r, tip[1] + r), r, (150,), -1)
        if person is not None:
            cv2.rectangle(
                img, self._pt(person - 0.08, 0.1), self._pt(person + 0.08, 1.0), (50,), -1
            )
            cv2.circle(img, self._pt(person, 0.1), round(self.height * 0.08), (170,), -1)
        return self._noisy(img)

    def stroke(self, i: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """Pixel end points of pen stroke ``i``: zig-zag "letters" along lines of text."""
        line, pos = divmod(i, STROKES_PER_LINE)
        y = 0.15 + 0.12 * (line % 6)
        x = 0.08 + pos * 0.8 / STROKES_PER_LINE
        dy = 0.05 if pos % 2 == 0 else -0.05
        return self._pt(x, y + (0.0 if dy > 0 else 0.05)), self._pt(x + 0.03, y + max(dy, 0.0))

    def _pt(self, fx: float, fy: float) -> tuple[int, int]:
        return (round(fx * (self.width - 1)), round(fy * (self.height - 1)))

    def _noisy(self, img: Gray) -> Gray:
        if self.noise <= 0:
            return img
        if not self._grain:  # a bank of noise fields, drawn once: drawing is the slow part
            for _ in range(NOISE_FIELDS):
                field = np.rint(self._rng.normal(0.0, self.noise, img.shape))
                up = np.clip(field, 0, 255).astype(np.uint8)
                down = np.clip(-field, 0, 255).astype(np.uint8)
                self._grain.append((up, down))
        up, down = self._grain[int(self._rng.integers(NOISE_FIELDS))]
        return u8(cv2.subtract(cv2.add(img, up), down))
