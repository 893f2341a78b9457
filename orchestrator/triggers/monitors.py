"""Monitors: checks the daemon runs against a production model, emitting an event when one fires.

* `DriftMonitor` compares new data with the data the production version was trained on
  (found through the version's `data_hash` lineage): per-feature PSI and a two-sample KS
  test (`orchestrator.steps.drift_report`). New data is either the request log that
  `orch serve --request-log` writes (checked once `min_rows` new rows have arrived; the
  byte offset read so far is stored with each check) or batch files matching a glob.
* `MetricMonitor` scores the production version on labelled feedback files (features plus
  the target column) and fires when the metric falls below its threshold (rises above it
  for error metrics such as rmse and mae).

Every check is recorded (`monitor_checks`), its report stored as a JSON artifact; a check
that fires emits its event (idempotency key: the monitor and the batch), which an
`EventTrigger` turns into a retraining run. The batch is claimed before it is checked,
so two daemons on one database check each batch once; an event's data carries the model,
version, report hash and, for feedback, the files, so a retraining run can take them as
parameters.
"""

from __future__ import annotations

import dataclasses
import glob as globlib
import json
from pathlib import Path
from typing import Any

from orchestrator.artifacts.store import ArtifactRef, ArtifactStore
from orchestrator.cache.hashing import hash_file
from orchestrator.errors import OrchestratorError, TriggerError
from orchestrator.store.metadata import Batch, MetadataStore, now
from orchestrator.store.registry import StoreRegistry
from orchestrator.triggers.events import EventNameError, check_event_name
from orchestrator.triggers.fields import check_fields, seconds

LOWER_IS_BETTER = frozenset({"rmse", "mae"})
CLASSIFICATION_METRICS = frozenset({"accuracy", "f1_macro", "precision_macro", "recall_macro"})
REGRESSION_METRICS = frozenset({"r2", "rmse", "mae"})


@dataclasses.dataclass(frozen=True)
class DriftMonitor:
    """Check the data `model` sees for drift from the data its production version learnt."""

    name: str
    model: str
    requests: str | None = None  # the request log of `orch serve MODEL --request-log FILE`
    batches: str | None = None  # or a glob of CSV/Parquet batch files
    min_rows: int = 100
    event: str = "drift"
    psi_threshold: float = 0.2
    ks_pvalue_threshold: float = 0.01
    bins: int = 10
    exclude: tuple[str, ...] = ("target",)
    debounce: float = seconds(2.0)

    def __post_init__(self) -> None:
        where = f"drift monitor '{self.name}'"
        check_fields(self, where)
        _check_event(where, self.event)
        if (self.requests is None) == (self.batches is None):
            raise TriggerError(f"{where}: give exactly one of requests= or batches=")
        if self.min_rows < 1:
            raise TriggerError(f"{where}: min_rows must be >= 1, got {self.min_rows}")
        if not 0 < self.ks_pvalue_threshold < 1:
            raise TriggerError(
                f"{where}: ks_pvalue_threshold must be in (0, 1), got {self.ks_pvalue_threshold}"
            )
        if self.psi_threshold <= 0:
            raise TriggerError(f"{where}: psi_threshold must be > 0, got {self.psi_threshold}")


@dataclasses.dataclass(frozen=True)
class MetricMonitor:
    """Score `model`'s production version on labelled feedback files; fire below `threshold`."""

    name: str
    model: str
    feedback: str  # a glob of CSV/Parquet files holding the features and the target
    threshold: float
    metric: str = "accuracy"
    target: str = "target"
    event: str = "metric_drop"
    debounce: float = seconds(2.0)

    def __post_init__(self) -> None:
        check_fields(self, f"metric monitor {self.name!r}")
        _check_event(f"metric monitor {self.name!r}", self.event)
        known = CLASSIFICATION_METRICS | REGRESSION_METRICS
        if self.metric not in known:
            raise TriggerError(
                f"metric monitor '{self.name}': unknown metric '{self.metric}'; "
                f"choose one of {', '.join(sorted(known))}"
            )

    def fires(self, value: float) -> bool:
        return value > self.threshold if self.metric in LOWER_IS_BETTER else value < self.threshold


def _check_event(where: str, event: str) -> None:
    try:
        check_event_name(event)
    except EventNameError as exc:
        raise TriggerError(f"{where}: {exc}") from None


Monitor = DriftMonitor | MetricMonitor


class Checker:
    """Runs monitors against one metadata store and artifact store."""

    def __init__(self, store: MetadataStore, artifacts: ArtifactStore, owner: str) -> None:
        self.store = store
        self.artifacts = artifacts
        self.registry = StoreRegistry(store, artifacts)
        self.owner = owner

    def run(self, monitors: list[Monitor], at: float) -> list[dict[str, Any]]:
        """Check every monitor's new data (files older than their debounce at `at`)."""
        report: list[dict[str, Any]] = []
        for mon in monitors:
            try:
                report += self._run_one(mon, at)
            except OrchestratorError as exc:
                report.append({"monitor": mon.name, "action": "check_failed", "error": str(exc)})
        return report

    def _run_one(self, mon: Monitor, at: float) -> list[dict[str, Any]]:
        version = self.registry.production(mon.model)
        if version is None:  # nothing in production yet: new data waits, unclaimed
            return []
        if isinstance(mon, DriftMonitor) and mon.requests is not None:
            got = self._request_batch(mon, Path(mon.requests))
            return [] if got is None else [self._check(mon, version, *got)]
        pattern = mon.batches if isinstance(mon, DriftMonitor) else mon.feedback
        out = []
        for path in sorted(globlib.glob(pattern or "", recursive=True)):
            p = Path(path)
            if not p.is_file() or at - p.stat().st_mtime < mon.debounce:
                continue
            key = f"{mon.name}:{p.resolve()}:{hash_file(p)}"
            if self.store.claim("monitor", key, self.owner):
                out.append(self._check(mon, version, str(p.resolve()), None, read_frame(p), key))
        return out

    def _request_batch(self, mon: DriftMonitor, log: Path) -> tuple[Any, ...] | None:
        """The rows logged since the last check, once there are `min_rows` of them."""
        import pandas as pd

        source = str(log.resolve())
        start = self.store.monitor_position(mon.name, source)
        if not log.is_file():
            return None
        if log.stat().st_size < start:  # the log was rotated or truncated: start over
            start = 0
        with log.open("rb") as fh:
            fh.seek(start)
            data = fh.read()
        end = data.rfind(b"\n") + 1  # complete lines only: the server may be mid-write
        rows: list[dict[str, Any]] = []
        for line in data[:end].splitlines():
            try:
                doc = json.loads(line)
            except ValueError:
                continue  # a damaged line is skipped, never fatal
            if isinstance(doc, dict) and doc.get("model") == mon.model:
                rows += [r for r in doc.get("rows") or [] if isinstance(r, dict)]
        if len(rows) < mon.min_rows:
            return None
        # The key names the byte range: a check whose daemon died after claiming it is
        # redone over a longer range next time, since only a recorded check moves `start`.
        key = f"{mon.name}:{source}:{start}-{start + end}"
        if not self.store.claim("monitor", key, self.owner):
            return None
        return source, start + end, pd.DataFrame(rows), key

    def _check(
        self, mon: Monitor, version: Any, source: str, position: int | None, batch: Any, key: str
    ) -> dict[str, Any]:
        """Check one claimed batch. A batch that cannot be checked is recorded as a failed
        check (never silently lost) and the monitor goes on with the next one."""
        where = {"version": version, "source": source, "position": position, "rows": len(batch)}
        try:
            return self._judge(mon, version, batch, key, where)
        except Exception as exc:
            check_id = self._record(mon, where, drifted=False, summary=f"check failed: {exc}")
            return {
                "monitor": mon.name,
                "action": "check_failed",
                "check_id": check_id,
                "error": str(exc),
            }

    def _record(self, mon: Monitor, where: dict[str, Any], **values: Any) -> int:
        return self.store.record_check(
            monitor=mon.name,
            kind="drift" if isinstance(mon, DriftMonitor) else "metric",
            model=mon.model,
            version=where["version"].version,
            source=where["source"],
            position=where["position"],
            rows=where["rows"],
            **values,
        )

    def _judge(
        self, mon: Monitor, version: Any, batch: Any, key: str, where: dict[str, Any]
    ) -> dict[str, Any]:
        source = where["source"]
        if isinstance(mon, DriftMonitor):
            doc, fired, value, summary = self._drift(mon, version, batch)
        else:
            doc, fired, value, summary = self._metric(mon, version, batch)
        ref = self.artifacts.put(doc, "json", inline=False)  # found by its hash
        self._record_artifact(ref)
        event_id = None
        data = {
            "model": mon.model,
            "version": version.version,
            "monitor": mon.name,
            "report": ref.hash,
            "summary": summary,
            "source": source,
        }
        if isinstance(mon, MetricMonitor):
            data |= {"metric": mon.metric, "value": value, "files": [source]}
        else:
            data["drifted_features"] = doc["drifted_features"]
        if fired:
            event_id, _ = self.store.emit_event(
                mon.event, data, source=f"monitor:{mon.name}", idempotency_key=f"monitor:{key}"
            )
        check_id = self._record(
            mon,
            where,
            drifted=fired,
            value=value,
            report_hash=ref.hash,
            summary=summary,
            event_id=event_id,
        )
        return {
            "monitor": mon.name,
            "action": "fired" if fired else "checked",
            "check_id": check_id,
            "summary": summary,
            **({"event_id": event_id, "event_name": mon.event} if fired else {}),
        }

    def _reference(self, mon: DriftMonitor, version: Any) -> Any:
        """The frame the production version was trained on (its deploy step's `data`)."""
        if not version.data_hash:
            raise TriggerError(
                f"monitor '{mon.name}': {mon.model} v{version.version} records no training "
                "data (deploy it with a `data` input to give drift a reference)"
            )
        ref = self.store.artifact_ref(version.data_hash)
        if ref is None:
            raise TriggerError(
                f"monitor '{mon.name}': the training data {version.data_hash[:12]} of "
                f"{mon.model} v{version.version} is not in the store"
            )
        return self.artifacts.get(ref)

    def _drift(self, mon: DriftMonitor, version: Any, batch: Any) -> tuple[Any, ...]:
        from orchestrator.steps.drift import drift_report

        reference = self._reference(mon, version)
        features = [c for c in map(str, reference.columns) if c not in mon.exclude]
        features = [c for c in features if c in batch.columns] or features
        report = drift_report(
            reference,
            batch,
            features=features,
            exclude=mon.exclude,
            psi_threshold=mon.psi_threshold,
            ks_pvalue_threshold=mon.ks_pvalue_threshold,
            bins=mon.bins,
        )
        worst = max((f.psi for f in report.features), default=0.0)
        doc = report.model_dump(mode="json") | {"kind": "drift", "model": mon.model}
        doc["version"] = version.version
        return doc, report.drifted, worst, report.summary()

    def _metric(self, mon: MetricMonitor, version: Any, frame: Any) -> tuple[Any, ...]:
        from orchestrator.steps.evaluate import score

        if mon.target not in frame.columns:
            raise TriggerError(
                f"monitor '{mon.name}': feedback has no target column '{mon.target}' "
                f"(columns: {', '.join(map(str, frame.columns))})"
            )
        model = self.registry.load(version)
        names = list(getattr(model, "feature_names_in_", []))
        x = frame[names] if names else frame.drop(columns=[mon.target])
        task = "classification" if mon.metric in CLASSIFICATION_METRICS else "regression"
        try:
            metrics = score(model, x, frame[mon.target], task)
        except (KeyError, ValueError) as exc:
            raise TriggerError(
                f"monitor '{mon.name}': cannot score {mon.model} v{version.version} on the "
                f"feedback: {exc}"
            ) from None
        value = metrics[mon.metric]
        fired = mon.fires(value)
        cmp = ("above" if mon.metric in LOWER_IS_BETTER else "below") if fired else "within"
        summary = (
            f"{mon.metric} {value:.4f} of {mon.model} v{version.version} on {len(frame)} "
            f"labelled rows is {cmp} threshold {mon.threshold}"
        )
        doc = {
            "kind": "metric",
            "model": mon.model,
            "version": version.version,
            "metric": mon.metric,
            "value": value,
            "threshold": mon.threshold,
            "metrics": metrics,
            "rows": len(frame),
        }
        return doc, fired, value, summary

    def _record_artifact(self, ref: ArtifactRef) -> None:
        row = ref.to_json() | {"run_id": None, "step": None, "created_at": now()}
        self.store.write(Batch(artifacts={ref.hash: row}))


def read_frame(path: Path) -> Any:
    """A CSV, TSV or Parquet file as a DataFrame; a clear error naming the file otherwise."""
    import pandas as pd

    try:
        if path.suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",")
    except (OSError, ValueError) as exc:
        raise TriggerError(f"cannot read batch file {path}: {exc}") from None


def load_report(store: MetadataStore, artifacts: ArtifactStore, check_id: int) -> dict[str, Any]:
    """A check's row with its stored report (`report`), for the CLI and the UI."""
    from orchestrator.errors import NotFound

    check = store.monitor_check(check_id)
    if check is None:
        raise NotFound(f"no monitor check {check_id} (see `orch monitors`)")
    ref = store.artifact_ref(check["report_hash"]) if check["report_hash"] else None
    return check | {"report": None if ref is None else artifacts.get(ref)}
