"""S-T coding, Rt, Ch and the teaching type, boundary cases included (pure logic)."""

from __future__ import annotations

import pytest

from controller.analytics.st import (
    RoomTimeline,
    analyse,
    code,
    merge,
    runs,
    teaching_type,
)


def lead(codes: str, offset: int = 0) -> RoomTimeline:
    return RoomTimeline("city-101", True, offset, codes)


def receiver(codes: str, cid: str = "village-201", offset: int = 0) -> RoomTimeline:
    return RoomTimeline(cid, False, offset, codes)


@pytest.mark.parametrize(
    ("n_t", "n", "g", "expected"),
    [
        (3, 10, 2, "practice"),  # Rt = 0.3 exactly: 练习型
        (4, 10, 2, "mixed"),  # just over 0.3, few runs
        (7, 10, 2, "lecture"),  # Rt = 0.7 exactly: 讲授型
        (6, 10, 2, "mixed"),
        (5, 10, 5, "dialogue"),  # Ch = 0.4 exactly: 对话型
        (5, 10, 4, "mixed"),  # Ch = 0.3
        (9, 30, 30, "practice"),  # Rt = 0.3 wins over a high Ch
        (21, 30, 30, "lecture"),  # Rt = 0.7 (21/30 is not 0.7 in floating point)
        (0, 1, 1, "practice"),
        (1, 1, 1, "lecture"),
    ],
)
def test_teaching_type_at_its_boundaries(n_t: int, n: int, g: int, expected: str) -> None:
    assert teaching_type(n_t, n, g) == expected


def test_teaching_type_refuses_impossible_counts_and_has_none_for_no_samples() -> None:
    assert teaching_type(0, 0, 0) is None
    with pytest.raises(ValueError, match="N_T=11, N=10"):
        teaching_type(11, 10, 2)
    with pytest.raises(ValueError, match="g=0"):
        teaching_type(1, 10, 0)


def test_runs_count_changes_of_code() -> None:
    assert runs("") == 0
    assert runs("TTTT") == 1
    assert runs("TSTS") == 4
    assert runs("TTSSST") == 3


def test_an_interval_is_t_when_the_teacher_holds_at_least_half_of_it() -> None:
    assert code("TTT..", 5) == "T"  # 3 of 5
    assert code("TT...", 5) == "S"  # silence is the students' (practice, thinking)
    assert code("TTSS", 4) == "T"  # a tie is the teacher's
    # Both talking counts for both sides: 5 teacher seconds against 3 of the students'.
    assert code("BBBTT", 5) == "T"
    assert code("BBBSS", 5) == "S"  # 3 against 5
    assert code("SSSSS" + "TTTTT" + "TT", 5) == "ST"  # 2 s left over: under half, dropped
    assert code("SSSSS" + "TTT", 5) == "ST"  # 3 s left over: coded
    assert code("???TT" + "TTTTT", 5) == "T"  # mostly unheard: left out
    assert code("??TTT", 5) == "T"  # 2 of 5 unheard: coded from the rest


@pytest.mark.parametrize("interval", [0, 601, -30])
def test_the_interval_is_bounded(interval: int) -> None:
    with pytest.raises(ValueError, match=r"interval_s must be 1\.\.600"):
        code("T" * 60, interval)


def test_merge_places_each_room_on_the_lesson_clock() -> None:
    # The lead started 2 s late, the receiver 1 s early.
    seconds = merge([lead("TTW.S", offset=2), receiver("..SS.S..", offset=-1)], 8)
    # 0: the lead not heard yet (unknown, whatever the receiver heard); 1: the receiver
    # speaks; 2: lead T + receiver S = both; 3: lead T; 4: W is the teacher's, with the
    # receiver speaking; 5: silence; 6: the lead room's own student; 7: nobody.
    assert seconds == "?SBTB.S?"


def test_merge_marks_seconds_nobody_heard() -> None:
    assert merge([lead("T?T")], 5) == "T?T??"
    assert merge([], 3) == "???"


def test_a_lecture_with_two_questions() -> None:
    # 40 min at 30 s: the teacher talks, twice a class answers for a minute.
    lesson = "T" * 600 + "S" * 60 + "T" * 900 + "S" * 60 + "T" * 780
    result = analyse([lead(lesson.replace("S", ".")), receiver(lesson.replace("T", "."))], 2400)
    assert result.samples == "T" * 20 + "SS" + "T" * 30 + "SS" + "T" * 26
    assert result.n == 80
    assert result.rt == pytest.approx(76 / 80)
    assert result.ch == pytest.approx(4 / 80)
    assert result.teaching_type == "lecture"
    assert result.teacher_talk_s == 2280
    assert result.student_talk_s == 120
    [room] = result.rooms
    assert (room.classroom_id, room.turns, room.talk_s) == ("village-201", 2, 120)


def test_a_dialogue_and_each_rooms_turns() -> None:
    # Question (30 s), answer (30 s) alternating between two receiving rooms.
    lead_codes, a, b = "", "", ""
    for i in range(20):
        lead_codes += "T" * 30 + "." * 30
        a += "." * 30 + ("S" * 30 if i % 2 == 0 else "." * 30)
        b += "." * 30 + ("." * 30 if i % 2 == 0 else "S" * 30)
    result = analyse(
        [lead(lead_codes), receiver(a, "village-201"), receiver(b, "village-202")], 1200
    )
    assert result.samples == "TS" * 20
    assert (result.rt, result.ch, result.teaching_type) == (0.5, 0.975, "dialogue")
    assert [(r.classroom_id, r.turns, r.talk_s) for r in result.rooms] == [
        ("village-201", 10, 300),
        ("village-202", 10, 300),
    ]


def test_short_pauses_are_one_turn_and_long_ones_two() -> None:
    result = analyse([lead("." * 20), receiver("SS..SS" + "...." + "SS")], 20)
    [room] = result.rooms
    assert (room.turns, room.talk_s) == (2, 6)


def test_practice_is_mostly_silence() -> None:
    codes = "T" * 120 + "." * 900 + "T" * 60 + "." * 600 + "T" * 120
    result = analyse([lead(codes)], len(codes))
    assert result.teaching_type == "practice"
    assert result.silence_s == 1500
    assert result.rt == pytest.approx(10 / 60)


def test_nothing_heard_gives_no_figures() -> None:
    result = analyse([], 600)
    assert (result.n, result.rt, result.ch, result.teaching_type) == (0, None, None, None)
    assert result.heard_s == 0
    doc = result.document()
    assert doc["type"] is None and doc["type_zh"] is None


def test_a_timeline_longer_than_the_lesson_is_cut_at_the_end() -> None:
    result = analyse([lead("T" * 100, offset=-10), receiver("S" * 100, offset=50)], 60)
    assert result.teacher_talk_s == 60
    assert result.rooms[0].talk_s == 10
