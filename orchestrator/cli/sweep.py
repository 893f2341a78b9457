"""`orch sweep` and `orch sweep-table`, and the table they print: every combination with
its parameters and metrics, best first.

`orch sweep` builds the sweep's one graph (`orchestrator.sweeps.build_sweep`) and runs it
as `orch run` runs a graph; the run's trigger records the sweep. The table: on a
terminal, a rich table; otherwise plain columns separated by two spaces (one header
line, one line per combination) that scripts and logs read as they are; with `--json`,
one JSON list of rows (`run_id`, `combination`, `params`, `metrics`, `status`). Rows
arrive ranked (`orchestrator.sweeps.Sweep.table`).
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from orchestrator.cli.base import (
    ENV,
    DaskOpt,
    ExecutorOpt,
    ImageOpt,
    ParamOpt,
    ParamsFileOpt,
    _backend_options,
    _overrides,
    app,
    execute_graph,
)
from orchestrator.cli.progress import out

GridOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--grid",
        "-g",
        help="PATH=VALUES, once per swept parameter: A,B,C lists values; LO..HI is a "
        "range (integer ends: every integer; float ends: drawn with --random); "
        "log:LO..HI is drawn log-uniformly with --random.",
    ),
]


RowsJsonOpt = Annotated[bool, typer.Option("--json", help="Print the rows as one JSON list.")]


@app.command()
def sweep(
    target: Annotated[
        str, typer.Argument(help="A built-in pipeline name or path/to/file.py:function.")
    ],
    grid: GridOpt = None,
    random: Annotated[
        int | None,
        typer.Option("--random", help="Draw N combinations from the grid instead of all."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of --random.")] = 0,
    metric: Annotated[
        str | None,
        typer.Option(
            "--metric",
            help="Rank by this metric (default: the primary metric the evaluate output "
            "names, else the first by name).",
        ),
    ] = None,
    maximize: Annotated[
        bool | None,
        typer.Option(
            "--maximize/--minimize",
            help="Direction of --metric (default: minimize names with loss/error/mse/mae, "
            "else maximize).",
        ),
    ] = None,
    param: ParamOpt = None,
    params_file: ParamsFileOpt = None,
    executor: ExecutorOpt = "thread",
    dask_address: DaskOpt = None,
    image: ImageOpt = None,
    as_json: RowsJsonOpt = False,
) -> None:
    """Run a pipeline over every combination of the --grid values as ONE run: steps that
    are the same in every combination run once, the rest once per combination (c0.train,
    c1.train, ...). Prints each combination's parameters and evaluate metrics, best first."""
    from orchestrator import api
    from orchestrator.cli.sweep import print_sweep
    from orchestrator.loader import load_target, normalize_target
    from orchestrator.sweeps import Sweep, build_sweep

    pipe = load_target(target)
    plan, record = build_sweep(pipe, grid or [], _overrides(param, params_file), random, seed)
    result = execute_graph(
        plan.graph, target=normalize_target(target), executor=executor, quiet=as_json,
        options=_backend_options(dask_address, image), trigger={"kind": "sweep", **record},
    )  # fmt: skip
    done = api.from_result(result, plan.graph, ENV.artifacts)
    print_sweep(Sweep(done, record, metric, maximize), as_json)
    raise typer.Exit(0 if result.status == "succeeded" else 1)


@app.command("sweep-table")
def sweep_table(
    run_id: Annotated[str, typer.Argument(help="A sweep's run (an id prefix is enough).")],
    metric: Annotated[str | None, typer.Option("--metric")] = None,
    maximize: Annotated[bool | None, typer.Option("--maximize/--minimize")] = None,
    as_json: RowsJsonOpt = False,
) -> None:
    """The table of an earlier sweep, rebuilt from the store."""
    from orchestrator.cli.sweep import print_sweep
    from orchestrator.sweeps import sweep_of

    print_sweep(sweep_of(ENV, ENV.store.get_run(run_id), metric, maximize), as_json)


def print_sweep(result: Any, as_json: bool) -> None:
    """Print the table of a `Sweep` (see the module docstring)."""
    rows = result.table()
    if as_json:
        doc = [{"run_id": result.run.run_id, **r} for r in rows]
        sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")
        return
    header, lines = _cells(rows, result.metric)
    direction = "higher" if result.maximize else "lower"
    ranked = f"ranked by {result.metric} ({direction} is better)" if result.metric else "no metrics"
    title = f"sweep run {result.run.run_id}: {len(rows)} combinations, {ranked}"
    if sys.stdout.isatty():
        table = Table(title=title)
        for col in header:
            table.add_column(col)
        for line in lines:
            table.add_row(*line)
        out.print(table)
        return
    print(title)
    widths = [max(len(c) for c in col) for col in zip(header, *lines, strict=True)]
    for line in [header, *lines]:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


def _cells(rows: list[dict[str, Any]], metric: str | None) -> tuple[list[str], list[list[str]]]:
    params = list(dict.fromkeys(k for r in rows for k in r["params"]))
    metrics = list(dict.fromkeys(k for r in rows for k in r["metrics"]))
    if metric in metrics:
        metrics.remove(metric)
        metrics.insert(0, metric)
    header = ["rank", "combination", *params, *metrics, "status"]
    lines = []
    for i, r in enumerate(rows, 1):
        lines.append(
            [
                str(i),
                r["combination"],
                *(_text(r["params"].get(p)) for p in params),
                *(_number(r["metrics"].get(m)) for m in metrics),
                r["status"],
            ]
        )
    return header, lines


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"
