"""Benchmark: what each DAG file in dags/ costs to parse, against an empty DAG file.

Airflow parses DAG files over and over; a DAG file that imports pandas,
pyarrow or requests at module level pays for it on every parse.  For each
file, and for an empty DAG file, a fresh interpreter imports ``DagBag`` and
parses the file with it; the median wall time over several runs is the
file's **cold** parse time, and ``ratio`` (the goal figure, at most 1.5) is
the slowest file's over the empty DAG's.  Because Airflow's own import
dominates a cold parse, the run also names any heavy library (pandas,
pyarrow, duckdb, requests, matplotlib, ...) a file pulled in: that list must
be empty, and the tests check it on every run.  The same runs also report the
``DagBag`` call alone (**parse** ms): the file's own imports, the SDK parts
it loads lazily (``@task`` is ~50 ms the first time) and its tasks.
Last line: one JSON object.

Usage: .venv/bin/python bench/dag_parse.py [--quick] [--runs N] [--dags DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GOAL_RATIO = 1.5

EMPTY_DAG = """
from airflow.sdk import DAG

with DAG(dag_id="empty", schedule=None):
    pass
"""

PARSE_ONE = r"""
import sys, time, warnings
warnings.simplefilter("ignore")
from airflow.dag_processing.dagbag import DagBag
start = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1], safe_mode=False)
elapsed = time.perf_counter() - start
if bag.import_errors:
    print("IMPORT_ERRORS", bag.import_errors, file=sys.stderr)
    sys.exit(1)
heavy = [m for m in ("pandas", "pyarrow", "duckdb", "requests", "matplotlib", "phonenumbers", "numpy")
         if m in sys.modules]
print(elapsed, ",".join(heavy))
"""


def measure(path: Path, runs: int, env: dict[str, str]) -> tuple[float, float, list[str]]:
    """Median (cold wall seconds of a fresh interpreter, seconds of the DagBag call) for ``path``,
    and the heavy libraries parsing it imported."""
    cold, warm, heavy = [], [], []
    for _ in range(runs):
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-c", PARSE_ONE, str(path)], capture_output=True, text=True, env=env, timeout=300
        )
        cold.append(time.perf_counter() - started)
        if result.returncode != 0:
            raise SystemExit(f"{path.name} failed to parse:\n{result.stderr[-2000:]}")
        seconds, _, modules = result.stdout.strip().splitlines()[-1].partition(" ")
        warm.append(float(seconds))
        heavy = [m for m in modules.split(",") if m]
    return statistics.median(cold), statistics.median(warm), heavy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 runs per file instead of 7")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--dags", type=Path, default=REPO / "dags")
    args = parser.parse_args()
    runs = args.runs or (3 if args.quick else 7)

    home = tempfile.mkdtemp(prefix="every8d-dag-parse-")
    env = {**os.environ, "AIRFLOW_HOME": home, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True
    )

    files = sorted(args.dags.glob("*.py"))
    with tempfile.TemporaryDirectory() as scratch:
        empty = Path(scratch) / "empty_dag.py"
        empty.write_text(EMPTY_DAG)
        for path in [empty, *files]:
            measure(path, 1, env)  # compile bytecode and warm the OS file cache first
        empty_cold, empty_warm, _ = measure(empty, runs, env)

    results = {path.name: measure(path, runs, env) for path in files}
    print(f"{'file':<34} {'cold ms':>9} {'ratio':>6} {'parse ms':>9}  heavy imports")
    for name, (cold, warm, heavy) in results.items():
        print(
            f"{name:<34} {cold * 1000:9.0f} {cold / empty_cold:6.2f} {warm * 1000:9.1f}  "
            f"{', '.join(heavy) or '-'}"
        )
    print(f"{'(empty DAG)':<34} {empty_cold * 1000:9.0f} {1:6.2f} {empty_warm * 1000:9.1f}")

    ratio = max((cold for cold, _, _ in results.values()), default=empty_cold) / empty_cold
    print(f"slowest cold parse / empty DAG = {ratio:.2f} (goal <= {GOAL_RATIO})")
    print(
        json.dumps(
            {
                "bench": "dag_parse",
                "ratio": round(ratio, 3),
                "empty_seconds": round(empty_cold, 4),
                "files": {name: round(cold, 4) for name, (cold, _, _) in results.items()},
                "parse_seconds": {name: round(warm, 5) for name, (_, warm, _) in results.items()},
                "heavy_imports": {name: heavy for name, (_, _, heavy) in results.items() if heavy},
                "empty_parse_seconds": round(empty_warm, 5),
                "runs": runs,
            }
        )
    )


if __name__ == "__main__":
    main()
