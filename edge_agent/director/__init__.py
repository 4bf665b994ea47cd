"""The director (导播) of a recording classroom: which camera is on air, and when.

* :mod:`~edge_agent.director.activity` — OpenCV detectors on small grayscale frames: the
  teacher walking, standing or at the board; a student standing up; writing on the board.
* :mod:`~edge_agent.director.rules` — the shot-choosing state machine (pure logic).
* :mod:`~edge_agent.director.director` — :class:`Director` ties them together per camera.
* :mod:`~edge_agent.director.compose` — movie mode: the programme picture with an inset.
* :mod:`~edge_agent.director.synthetic` — synthetic classroom scenes for tests and benches.
"""

from edge_agent.director.director import Director, DirectorStats
from edge_agent.director.rules import DEFAULT_TARGETS, Cut, Observation, RuleSettings, Shot, Target

__all__ = [
    "DEFAULT_TARGETS",
    "Cut",
    "Director",
    "DirectorStats",
    "Observation",
    "RuleSettings",
    "Shot",
    "Target",
]
