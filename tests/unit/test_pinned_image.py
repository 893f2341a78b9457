"""Which recorded package versions an image for `orch reproduce --image` gets, and its tag."""

from __future__ import annotations

from orchestrator.execution.pinned import pinned_tag, pins_for


def test_pins_are_the_differing_and_the_needed_missing_ones() -> None:
    recorded = {"a": "1", "B_c": "2", "d": "3", "e": "4", "pip": "9"}
    have = {"a": "1", "b-c": "5", "pip": "1"}
    assert pins_for(recorded, have, {"d"}) == {"B_c": "2", "d": "3"}
    assert pinned_tag("sha256:x", {"a": "1"}) == pinned_tag("sha256:x", {"a": "1"})
    assert pinned_tag("sha256:x", {"a": "1"}) != pinned_tag("sha256:x", {"a": "2"})
