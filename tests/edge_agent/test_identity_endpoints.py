"""The order an agent dials its controllers in."""

from __future__ import annotations

from edge_agent.identity import Identity

A, B, C = (f"tcp://10.0.0.{n}:7700" for n in (1, 2, 3))


def _identity(controller: str, controllers: list[str]) -> Identity:
    return Identity("room-a", controller, "P" * 40, "p" * 40, "s" * 40, controllers=controllers)


def test_the_controller_it_enrolled_with_comes_first_then_the_rest_in_turn() -> None:
    # Enrolled at B: B knows the key for sure; the others learn it seconds later.
    assert _identity(B, [A, B, C]).endpoints == [B, C, A]
    assert _identity(A, [A, B, C]).endpoints == [A, B, C]


def test_one_controller_or_one_not_in_the_list() -> None:
    assert _identity(A, []).endpoints == [A]
    # An enrolment address missing from the list (a load balancer's name): the list as is.
    assert _identity("tcp://lb:7700", [A, B]).endpoints == [A, B]
