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

How to run
    python bench/cli_cached.py              # 5 repetitions
    python bench/cli_cached.py --reps 9

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
    """Median and best wall and CPU time of `reps` runs of one command."""

    def __init__(self, cmd: list[str], env: dict[str, str], cwd: Path, reps: int) -> None:
        runs = [timed(cmd, env, cwd) for _ in range(reps)]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="orch-bench-cli-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["ORCH_HOME"] = str(tmp / "home")
    run = [sys.executable, "-m", "orchestrator", "run", "classification"]
    try:
        first = timed(run, env, tmp)
        floor_py = Figures([sys.executable, "-c", "pass"], env, tmp, args.reps)
        floor_help = Figures([sys.executable, "-m", "orchestrator", "--help"], env, tmp, args.reps)
        cached = Figures(run, env, tmp, args.reps)
        rows = imports(env, tmp, run)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"orch run classification, whole process (wall median / best of {args.reps}; CPU)")
    print(floor_py.line("python -c pass"))
    print(floor_help.line("orch --help"))
    print(f"  {'first run (uncached)':<26}{first[0]:6.3f} s (once)          cpu {first[1]:.3f} s")
    mark = "ok" if cached.wall <= TARGET_S else "over"
    print(cached.line("cached run") + f"   target <= {TARGET_S} s: {mark}")
    loaded = {name.split(".")[0] for _, _, name in rows}
    print(f"  heavy libraries loaded by the cached run: {sorted(loaded & set(HEAVY)) or 'none'}")
    print("  largest top-level imports of the cached run (-X importtime, cumulative):")
    top = [(us, name) for depth, us, name in rows if depth == 0]
    for us, name in sorted(top, reverse=True)[:8]:
        print(f"    {us / 1000:7.1f} ms  {name}")


if __name__ == "__main__":
    main()
