"""Whole-process time of a fully cached `orch run classification`, with its floors.

What it measures
    The wall time, from `fork` to exit, of `python -m orchestrator run classification`
    in a fresh temporary `ORCH_HOME` once the pipeline has run there (every step a cache
    hit), against two floors measured the same way: `python -c pass` (the interpreter)
    and `python -m orchestrator --help` (the command line without a run). It also runs
    the cached command once under `-X importtime` and prints the largest imports and
    whether scikit-learn, scipy or pandas were loaded (a cached run loads none of them).

    The children run as an installed Python runs by default, writing and reusing
    bytecode caches (`PYTHONDONTWRITEBYTECODE` is dropped, so the uncached run writes
    the package's `__pycache__` folders): without them every process compiles the
    package from source, which is not what a user's `orch` does.

    Figures are the median (and best) of `--reps` runs, as wall time and as the CPU
    time (user + system) of the child process, which a busy machine disturbs less. The
    first, uncached run is timed once and printed for reference.

    With `--baseline DIR` (a checkout of another revision, e.g. `git archive main | tar
    -x -C DIR`) the same figures are measured for that revision's `orchestrator` package
    too (put first on `PYTHONPATH`; `orchestrator.steps` and `orchestrator.pipelines`
    stay the installed ones), the two commands taking turns within each repetition so
    that the machine's load falls on both alike.

How to run
    python bench/cli_cached.py              # 5 repetitions
    python bench/cli_cached.py --reps 9
    python bench/cli_cached.py --baseline /tmp/main-checkout

Target printed next to the figure: cached run <= 0.8 s.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 0.8
HEAVY = ("sklearn", "scipy", "pandas")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of `cmd`."""
    cpu0, t0 = _children_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    return elapsed, cpu


class Figures:
    """Median and best wall and CPU time of repeated runs of one command."""

    def __init__(self, runs: list[tuple[float, float]]) -> None:
        self.wall = statistics.median(r[0] for r in runs)
        self.best = min(r[0] for r in runs)
        self.cpu = statistics.median(r[1] for r in runs)

    def line(self, label: str) -> str:
        return f"  {label:<26}{self.wall:6.3f} s / {self.best:.3f} s   cpu {self.cpu:.3f} s"


def imports(env: dict[str, str], cwd: Path, cmd: list[str]) -> list[tuple[int, int, str]]:
    """(nesting depth, cumulative microseconds, module) of each import `cmd` makes."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", *cmd[1:]],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
    )
    rows = []
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if m:
            rows.append((len(m.group(2)) // 2, int(m.group(1)), m.group(3)))
    return rows


class Revision:
    """One revision's package, its own `ORCH_HOME`, and its figures once measured."""

    def __init__(self, label: str, env: dict[str, str], cwd: Path) -> None:
        self.label, self.env, self.cwd = label, env, cwd
        self.cwd.mkdir()
        self.env["ORCH_HOME"] = str(self.cwd / "home")
        self.runs: dict[str, list[tuple[float, float]]] = {}
        self.first = (0.0, 0.0)
        self.rows: list[tuple[int, int, str]] = []

    def time(self, what: str, cmd: list[str]) -> None:
        self.runs.setdefault(what, []).append(timed(cmd, self.env, self.cwd))

    def report(self, reps: int) -> None:
        cached = Figures(self.runs["cached"])
        how = f"wall median / best of {reps}; CPU"
        print(f"{self.label}: orch run classification, whole process ({how})")
        print(Figures(self.runs["python"]).line("python -c pass"))
        print(Figures(self.runs["help"]).line("orch --help"))
        wall, cpu = self.first
        print(f"  {'first run (uncached)':<26}{wall:6.3f} s (once)          cpu {cpu:.3f} s")
        mark = "ok" if cached.wall <= TARGET_S else "over"
        print(cached.line("cached run") + f"   target <= {TARGET_S} s: {mark}")
        loaded = {name.split(".")[0] for _, _, name in self.rows}
        print(
            f"  heavy libraries loaded by the cached run: {sorted(loaded & set(HEAVY)) or 'none'}"
        )
        print("  largest top-level imports of the cached run (-X importtime, cumulative):")
        top = [(us, name) for depth, us, name in self.rows if depth == 0]
        for us, name in sorted(top, reverse=True)[:8]:
            print(f"    {us / 1000:7.1f} ms  {name}")


COMMANDS = {
    "python": [sys.executable, "-c", "pass"],
    "help": [sys.executable, "-m", "orchestrator", "--help"],
    "cached": [sys.executable, "-m", "orchestrator", "run", "classification"],
}


def revisions(tmp: Path, baseline: Path | None) -> list[Revision]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    out = [Revision("this checkout", dict(env), tmp / "this")]
    if baseline is not None:
        if not (baseline / "orchestrator" / "__init__.py").is_file():
            raise SystemExit(f"error: --baseline {baseline}: no orchestrator package there")
        path = os.pathsep.join(p for p in (str(baseline), env.get("PYTHONPATH")) if p)
        out.append(Revision(f"baseline {baseline}", env | {"PYTHONPATH": path}, tmp / "baseline"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--baseline", type=Path, help="A checkout of another revision.")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="orch-bench-cli-"))
    try:
        revs = revisions(tmp, args.baseline)
        for rev in revs:
            rev.first = timed(COMMANDS["cached"], rev.env, rev.cwd)
        for what, cmd in COMMANDS.items():
            for _ in range(args.reps):
                for rev in revs:  # taking turns: the machine's load falls on each alike
                    rev.time(what, cmd)
        for rev in revs:
            rev.rows = imports(rev.env, rev.cwd, COMMANDS["cached"])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for rev in revs:
        rev.report(args.reps)
    if len(revs) == 2:
        now, base = (Figures(r.runs["cached"]) for r in revs)
        print(
            f"cached run: {now.wall:.3f} s against {base.wall:.3f} s for the baseline "
            f"(x{now.wall / base.wall:.2f}; CPU x{now.cpu / base.cpu:.2f})"
        )


if __name__ == "__main__":
    main()
