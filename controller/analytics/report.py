"""S-T figures in the term reports (课堂分析汇总): per school, teacher, subject or pairing,
how many of its lessons were analysed, their mean Rt and Ch, how many of each teaching
type, and the talk time of teachers and students.

The report reads each lesson's stored figures (``LessonAnalysis``) in one query; a lesson
no agent sent a timeline for is simply not analysed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from controller.analytics.st import TYPE_LABELS
from controller.db.models import LessonAnalysis


@dataclass(frozen=True)
class StFigures:
    """One analysed lesson's figures, as the reports need them."""

    rt: float
    ch: float
    teaching_type: str
    teacher_talk_s: int
    student_talk_s: int


def load_figures(db: Session, lessons: Select[Any]) -> dict[str, StFigures]:
    """The figures of the lessons ``lessons`` selects (their ids), by lesson id."""
    rows = db.execute(
        select(
            LessonAnalysis.lesson_id,
            LessonAnalysis.rt,
            LessonAnalysis.ch,
            LessonAnalysis.teaching_type,
            LessonAnalysis.teacher_talk_s,
            LessonAnalysis.student_talk_s,
        ).where(LessonAnalysis.lesson_id.in_(lessons), LessonAnalysis.teaching_type.is_not(None))
    )
    return {
        lid: StFigures(float(rt), float(ch), kind, int(t), int(s))
        for lid, rt, ch, kind, t, s in rows
        if rt is not None and ch is not None and kind is not None
    }


@dataclass
class StSummary:
    """The S-T figures of a group of lessons."""

    lessons: int = 0
    rt_sum: float = 0.0
    ch_sum: float = 0.0
    types: dict[str, int] = field(default_factory=dict)
    teacher_talk_s: int = 0
    student_talk_s: int = 0

    def add(self, figures: StFigures) -> None:
        """Count one analysed lesson."""
        self.lessons += 1
        self.rt_sum += figures.rt
        self.ch_sum += figures.ch
        self.types[figures.teaching_type] = self.types.get(figures.teaching_type, 0) + 1
        self.teacher_talk_s += figures.teacher_talk_s
        self.student_talk_s += figures.student_talk_s

    def document(self) -> dict[str, Any]:
        """The summary as the API sends it."""
        n = self.lessons
        talk = self.teacher_talk_s + self.student_talk_s
        return {
            "analysed": n,
            "rt_mean": round(self.rt_sum / n, 3) if n else None,
            "ch_mean": round(self.ch_sum / n, 3) if n else None,
            "types": dict(sorted(self.types.items())),
            "teacher_talk_s": self.teacher_talk_s,
            "student_talk_s": self.student_talk_s,
            "student_share": round(self.student_talk_s / talk, 3) if talk else None,
        }


CSV_HEADER = [
    "已分析 analysed",
    "Rt均值 Rt mean",
    "Ch均值 Ch mean",
    *(f"{zh} {en}" for zh, en in TYPE_LABELS.values()),
    "教师讲话(分) teacher talk (min)",
    "学生讲话(分) student talk (min)",
]


def csv_cells(summary: StSummary) -> list[Any]:
    """The summary's cells under ``CSV_HEADER``."""
    doc = summary.document()
    return [
        doc["analysed"],
        doc["rt_mean"],
        doc["ch_mean"],
        *(summary.types.get(kind, 0) for kind in TYPE_LABELS),
        round(summary.teacher_talk_s / 60, 1),
        round(summary.student_talk_s / 60, 1),
    ]
