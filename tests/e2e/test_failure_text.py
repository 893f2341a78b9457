"""What `orch run` prints about a failed step: styled by us, user text shown as written.

Rich markup is ours only: the failure header must not show literal `[red]...[/]`, and an
error message holding brackets (`[bold]`, `[/x]`) must appear verbatim, never be taken
as markup (which swallows it, or crashes the command with a MarkupError traceback).
"""

from __future__ import annotations

import pytest
from orchtest import Orch, Project

FLOW = """
from orchestrator import pipeline, step

@step
def boom(n: int = 1) -> int:
    raise ValueError({message!r})

@pipeline
def flow(n: int = 1):
    boom(n=n)
"""


@pytest.mark.parametrize(
    "message", ["plain failure", "bad [bold]price[/bold] column", "closing [/x] and [red]"]
)
def test_a_failed_step_is_reported_verbatim(orch: Orch, project: Project, message: str) -> None:
    project.write("flow.py", FLOW.format(message=message))
    res = orch("run", "flow.py:flow")
    assert res.code == 1, res.describe()
    assert "Traceback" not in res.err and "MarkupError" not in res.err, res.describe()
    assert "[red]" not in res.err.replace(message, ""), res.describe()
    assert "step 'boom' failed:" in res.err, res.describe()
    assert f"ValueError: {message}" in res.err, res.describe()  # the details, as written
    assert f"ValueError: {message}" in res.out, res.describe()  # the table's `why` column
