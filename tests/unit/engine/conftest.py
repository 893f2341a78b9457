"""The run unit tests import their standard graphs from `shapes.py` beside them, and
share one `engine`: a real SQLite store and artifact folder under the test's tmp_path."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.artifacts.store import ArtifactStore
from orchestrator.engine.loop import Engine
from orchestrator.execution.local import make_executor
from orchestrator.store.metadata import MetadataStore

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    store = MetadataStore(f"sqlite:///{tmp_path / 'orchestrator.db'}")
    artifacts = ArtifactStore(tmp_path / "artifacts")
    eng = Engine(store, artifacts, lambda name: make_executor(name, artifacts))
    yield eng
    eng.close()
    store.close()
