"""Floor control (课堂互动): the lead teacher or the scheduler calls on one receiving room.

- ``store``: the floor of each lesson in the database, validated and sequenced;
- ``api``: ``GET``/``PUT /api/v1/lessons/{lesson}/floor`` for the console;
- ``requests``: a lead classroom's own keys (``FloorRequest`` from its agent).

Every change is spread to the lesson's joined agents by the orchestrator
(``Orchestrator.floor_changed``) as a ``FloorState`` command each agent acknowledges.
"""
