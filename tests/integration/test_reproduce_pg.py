"""`orch reproduce` with the metadata store on a real PostgreSQL server: the snapshot is
written with the registration and read back to rebuild the version after its sources
were edited; an unchanged file's text is stored once."""

from __future__ import annotations

from orchtest import Orch, Project
from reproject import LINEAGE, write_project
from sqlalchemy import create_engine, text


def test_version_on_postgresql_is_rebuilt_identically_after_an_edit(
    pg_orch: Orch, pg_project: Project, pg_url: str
) -> None:
    write_project(pg_project)
    pg_orch.run("flow.py:iris")
    pg_project.edit("helpers.py", "* 10.0", "* 20.0")
    pg_orch.run("flow.py:iris")  # v2, from the edited helpers

    res = pg_orch("reproduce", "iris:1", "--verify", "--json", timeout=300)
    assert res.code == 0, res.describe()
    assert res.json["identical"] is True
    assert [s["step"] for s in res.json["steps"]] == LINEAGE

    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            files = conn.execute(text("SELECT count(*) FROM model_sources")).scalar()
            texts = conn.execute(text("SELECT count(*) FROM source_texts")).scalar()
            envs = conn.execute(text("SELECT count(*) FROM run_environments")).scalar()
    finally:
        engine.dispose()
    assert (files, texts, envs) == (4, 3, 2)
