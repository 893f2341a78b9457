"""Bad trigger input through the CLI: one `error:` line, exit 2, naming the file, the
definition and its field, or the option; never a traceback, never a bad event recorded."""

from __future__ import annotations

import pytest
from orchtest import Orch, Project

HEAD = """
from orchestrator import pipeline, step
from orchestrator.triggers.events import EventTrigger, FileSensor
from orchestrator.triggers.schedules import Schedule

@step
def work(rows: int = 0) -> int:
    return rows

@pipeline
def job(rows: int = 0):
    work(rows=rows)

"""

FLOW = HEAD + 'ok = EventTrigger(name="on-data", event="new-data", pipeline="job")\n'


def _one_error(res, *fragments: str) -> str:
    assert res.code == 2, res.describe()
    assert "Traceback" not in res.err, res.describe()
    lines = res.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.describe()
    for fragment in fragments:
        assert fragment in lines[0], res.describe()
    return lines[0]


def test_a_syntax_error_in_a_definitions_file_names_file_and_line(
    orch: Orch, project: Project
) -> None:
    project.write("flow.py", HEAD + "every = Schedule(name='x', pipeline='job', cron=\n")
    line = HEAD.lstrip("\n").count("\n") + 1
    for cmd in (("schedules", "flow.py"), ("daemon", "flow.py", "--once")):
        _one_error(orch(*cmd), f"flow.py:{line}", "SyntaxError")


@pytest.mark.parametrize(
    ("definition", "fragments"),
    [
        (
            'EventTrigger(name="on-data", event="new-data", pipeline="job", '
            'cooldown="ten minutes")',
            ["event trigger 'on-data'", "cooldown", "a number", "'ten minutes'"],
        ),
        (
            'Schedule(name="hourly", pipeline="job", cron="0 * * * *", max_catchup="ten")',
            ["schedule 'hourly'", "max_catchup", "'ten'"],
        ),
        (
            'Schedule(name="hourly", pipeline="job", cron=15)',
            ["schedule 'hourly'", "cron", "a string", "15"],
        ),
        (
            'Schedule(name="hourly", pipeline="job", cron="0 * * * *", params=["rows"])',
            ["schedule 'hourly'", "params", "['rows']"],
        ),
        (
            'FileSensor(name="inbox", glob="in/*.csv", pipeline="job", debounce="2s")',
            ["file sensor 'inbox'", "debounce", "'2s'"],
        ),
        (
            'EventTrigger(name="on-blank", event="new data", pipeline="job")',
            ["event trigger 'on-blank'", "event name 'new data'"],
        ),
    ],
)
def test_a_definition_with_a_wrong_field_names_file_line_definition_and_field(
    orch: Orch, project: Project, definition: str, fragments: list[str]
) -> None:
    project.write("flow.py", HEAD + f"bad = {definition}\n")
    line = HEAD.lstrip("\n").count("\n") + 1
    for cmd in (("schedules", "flow.py"), ("daemon", "flow.py", "--once")):
        _one_error(orch(*cmd), f"flow.py:{line}", *fragments)


@pytest.mark.parametrize("value", ["not-a-date", "2026-13-01T00:00:00Z", ""])
def test_daemon_now_that_is_not_a_time_names_the_option(
    orch: Orch, project: Project, value: str
) -> None:
    project.write("flow.py", FLOW)
    res = orch("daemon", "flow.py", "--once", "--now", value)
    _one_error(res, "--now", repr(value), "ISO 8601")


def test_daemon_now_without_a_zone_or_without_once(orch: Orch, project: Project) -> None:
    project.write("flow.py", FLOW)
    _one_error(orch("daemon", "flow.py", "--once", "--now", "2026-11-23T10:00"), "time zone")
    res = orch("daemon", "flow.py", "--now", "2026-11-23T10:00Z", timeout=60)
    _one_error(res, "--now", "--once")


@pytest.mark.parametrize("name", ["", "  ", "new data", "a" * 201])
def test_emit_refuses_a_bad_event_name_and_records_nothing(
    orch: Orch, project: Project, name: str
) -> None:
    _one_error(orch("event", "emit", name), "event name")
    res = orch("events", "--json")
    assert res.code == 0 and res.json["events"] == [], res.describe()


def test_emit_data_that_is_not_key_value_names_the_data_option(orch: Orch) -> None:
    line = _one_error(orch("event", "emit", "new-data", "--data", "path"), "--data", "'path'")
    assert "--param" not in line
    assert orch("events", "--json").json["events"] == []
