"""The container reaper's bookkeeping: what is still listed when the runner's pipe ends."""

from __future__ import annotations

import io

from orchestrator.execution.reaper import read_until_eof

A, B, C = ("a" * 64, "b" * 64, "c" * 64)


def test_containers_taken_back_are_not_removed() -> None:
    lines = io.StringIO(f"+{A}\n+{B}\n-{A}\n+{C}\n\n-{'f' * 64}\n+\n")
    assert read_until_eof(lines) == [B, C]


def test_only_full_ids_count_never_a_prefix() -> None:
    # a prefix would make the engine remove whichever container it matches
    assert read_until_eof(io.StringIO(f"+{A}\n+bbbb\n+{B[:40]}")) == [A]
