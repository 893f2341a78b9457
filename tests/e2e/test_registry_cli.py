"""The model registry from the command line, as a user types it: promote, aliases, the
audit trail, and one clear error line for a model, version or alias that does not exist.

State is made through `orch run classification` twice (C=1.0 then C=0.05), so the
deploy step registers the versions and records its own events.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from orchtest import Orch

MODEL = "iris-classifier"


@pytest.fixture(scope="module")
def orch(tmp_path_factory: pytest.TempPathFactory) -> Orch:
    tmp = tmp_path_factory.mktemp("registry-cli")
    orch = Orch(tmp / "home", tmp)
    orch.run("classification", "--param", "C=1.0")
    orch.run("classification", "--param", "C=0.05")
    return orch


def events(orch: Orch) -> list[dict[str, Any]]:
    res = orch("models", MODEL, "--events", "--json")
    assert res.code == 0, res.describe()
    return list(reversed(res.json["events"]))  # oldest first


def test_deploy_step_events_name_their_run_and_step(orch: Orch) -> None:
    first = events(orch)[:2]
    assert [(e["version"], e["kind"], e["to_value"], e["actor"]) for e in first] == [
        (1, "registered", "candidate", "deploy"),
        (1, "stage", "production", "deploy"),
    ]
    run_ids = {r["run_id"] for r in orch.runs()}
    assert {e["run_id"] for e in first} <= run_ids and {e["step"] for e in first} == {"deploy"}
    table = orch("models", MODEL, "--events")
    assert table.code == 0 and "deploy step 'deploy' of run" in table.out, table.describe()


def test_promote_and_alias_are_recorded_and_keep_the_reason(orch: Orch) -> None:
    versions = orch("models", MODEL, "--json").json["models"]
    registered = {v["version"]: v["reason"] for v in versions}
    res = orch("promote", MODEL, "v2", "--reason", "smaller C generalises [better]")
    assert res.code == 0 and f"{MODEL} v2 is production (v1 archived)" in res.out, res.describe()
    res = orch("alias", MODEL, "champion", "1", "--reason", "holdout winner")
    assert res.code == 0 and f"{MODEL}@champion -> v1" in res.out, res.describe()
    res = orch("alias", MODEL, "champion", "2")
    assert res.code == 0 and f"{MODEL}@champion -> v2 (was v1)" in res.out, res.describe()
    assert orch("alias", MODEL, "champion").out.strip() == f"{MODEL}@champion -> v2"
    trail = [(e["version"], e["kind"], e["from_value"], e["to_value"], e["actor"], e["reason"])
             for e in events(orch)]  # fmt: skip
    assert trail[-4:] == [
        (1, "stage", "production", "archived", "cli",
         "replaced by v2: smaller C generalises [better]"),
        (2, "stage", "candidate", "production", "cli", "smaller C generalises [better]"),
        (1, "alias", None, "champion: v1", "cli", "holdout winner"),
        (2, "alias", "champion: v1", "champion: v2", "cli", ""),
    ]  # fmt: skip
    after = {v["version"]: v["reason"] for v in orch("models", MODEL, "--json").json["models"]}
    assert after == registered  # promotion never overwrote a registered reason
    table = orch("models", MODEL, "--events")
    assert "smaller C generalises [better]" in table.out, table.describe()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("promote", MODEL, "9"), f"error: no version 9 of model '{MODEL}'"),
        (("promote", MODEL, "two"), f"error: model '{MODEL}': version 'two' is not a number"),
        (("promote", "iris-clasifier", "1"), "error: no model 'iris-clasifier' is registered "
                                             f"(did you mean '{MODEL}'?)"),
        (("alias", MODEL, "champion", "9"), f"error: no version 9 of model '{MODEL}'"),
        (("alias", MODEL, "nope"), f"error: model '{MODEL}' has no alias 'nope'"),
        (("alias", MODEL, "bad name", "1"), "error: alias 'bad name' is not a valid alias name"),
        (("alias", MODEL, "nope", "--delete"), f"error: model '{MODEL}' has no alias 'nope'"),
        (("serve", f"{MODEL}@nope"), f"error: model '{MODEL}' has no alias 'nope'"),
        (("serve", f"{MODEL}@9"), f"error: no version 9 of model '{MODEL}'"),
        (("serve", f"{MODEL}@"), f"error: model reference '{MODEL}@' is not NAME or NAME@ALIAS"),
        (("models", "--events"), "error: --events needs a model name"),
    ],
    ids=["promote-version", "promote-not-a-number", "promote-model", "alias-version",
         "alias-unknown", "alias-bad-name", "alias-delete-unknown", "serve-alias",
         "serve-version", "serve-empty", "events-no-name"],
)  # fmt: skip
def test_unknown_names_are_one_error_line(orch: Orch, args: tuple[str, ...], message: str) -> None:
    res = orch(*args)
    assert res.code == 2, res.describe()
    assert res.err.startswith(message), res.describe()
    assert len(res.err.strip().splitlines()) == 1 and "Traceback" not in res.err, res.describe()


def test_a_refused_change_writes_no_event(orch: Orch, tmp_path: Path) -> None:
    before = len(events(orch))
    assert orch("alias", MODEL, "champion", "9").code == 2
    assert orch("promote", MODEL, "9").code == 2
    assert len(events(orch)) == before
