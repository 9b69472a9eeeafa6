"""Benchmark: what each DAG file in dags/ costs the DAG processor, against an empty DAG file.

The DAG processor re-parses every file every few minutes, so a DAG file that
imports pandas or pyarrow at module level slows every parse.  Each file is
parsed by ``DagBag`` in a fresh interpreter that has already imported what
the processor always has (``airflow.sdk`` and ``DagBag``), so the figure is
the file's own cost; the median of several runs is compared with the same
measure for an empty DAG file.  Last line: one JSON object.

Usage: .venv/bin/python bench/dag_parse.py [--quick] [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GOAL_RATIO = 1.5

EMPTY_DAG = '''
from airflow.sdk import DAG

with DAG(dag_id="empty", schedule=None):
    pass
'''

PARSE_ONE = r'''
import sys, time, warnings
warnings.simplefilter("ignore")
import airflow.sdk
for name in airflow.sdk.__all__:  # the processor has the whole SDK loaded after its first file
    try:
        getattr(airflow.sdk, name)
    except Exception:
        pass
from airflow.dag_processing.dagbag import DagBag
start = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1], safe_mode=False)
elapsed = time.perf_counter() - start
if bag.import_errors:
    print("IMPORT_ERRORS", bag.import_errors, file=sys.stderr)
    sys.exit(1)
print(elapsed)
'''


def parse_seconds(path: Path, runs: int, env: dict[str, str]) -> float:
    """Median seconds DagBag needs to parse ``path`` in a fresh, warmed-up interpreter."""
    samples = []
    for _ in range(runs):
        result = subprocess.run(
            [sys.executable, "-c", PARSE_ONE, str(path)], capture_output=True, text=True, env=env, timeout=300
        )
        if result.returncode != 0:
            raise SystemExit(f"{path.name} failed to parse:\n{result.stderr[-2000:]}")
        samples.append(float(result.stdout.strip().splitlines()[-1]))
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 runs per file instead of 7")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--dags", type=Path, default=REPO / "dags")
    args = parser.parse_args()
    runs = args.runs or (3 if args.quick else 7)

    home = tempfile.mkdtemp(prefix="every8d-dag-parse-")
    env = {**os.environ, "AIRFLOW_HOME": home, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True)

    with tempfile.TemporaryDirectory() as scratch:
        empty = Path(scratch) / "empty_dag.py"
        empty.write_text(EMPTY_DAG)
        parse_seconds(empty, 1, env)  # warm the OS file cache before measuring
        baseline = parse_seconds(empty, runs, env)

    per_file = {}
    for path in sorted(args.dags.glob("*.py")):
        per_file[path.name] = parse_seconds(path, runs, env)
        print(f"{path.name:<40} {per_file[path.name] * 1000:8.1f} ms  ({per_file[path.name] / baseline:.2f}x)")
    print(f"{'(empty DAG)':<40} {baseline * 1000:8.1f} ms")

    slowest = max(per_file.values(), default=baseline)
    ratio = slowest / baseline
    print(f"slowest / empty = {ratio:.2f} (goal <= {GOAL_RATIO})")
    print(json.dumps({
        "bench": "dag_parse",
        "ratio": round(ratio, 3),
        "empty_seconds": round(baseline, 5),
        "files": {name: round(seconds, 5) for name, seconds in per_file.items()},
        "runs": runs,
    }))


if __name__ == "__main__":
    main()
