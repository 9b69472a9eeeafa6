"""Each benchmark's ``--quick`` run, end to end: it must finish and print its figures.

No timing is asserted (benchmarks measure, tests check); what is checked is
that every bench still runs against the current code, prints as its last
line the JSON object DESIGN.md fixes, and that its correctness counters hold
(rows landed, nothing lost or counted twice, no heavy import at parse time).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

REQUIRED_KEYS = {
    "send": {"recipients", "calls", "naive_calls", "seconds", "naive_seconds", "speedup", "peak_rss_mb"},
    "ingest": {"rows", "seconds", "naive_seconds", "speedup", "rows_per_s", "peak_rss_mb"},
    "pushes": {"pushes", "pushes_per_s", "p99_ms", "lost", "double_counted"},
    "dag_parse": {"ratio", "files"},
    "status_cycle": {
        "batches",
        "messages",
        "latency_ms",
        "seconds",
        "naive_seconds",
        "speedup",
        "peak_rss_mb",
        "baseline_rss_mb",
        "task_instances",
    },
}


def run_bench(name: str, *arguments: str) -> dict:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / f"{name}.py"), "--quick", *arguments],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT / "plugins")},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["bench"] == name
    assert REQUIRED_KEYS[name] <= figures.keys()
    return figures


@pytest.mark.timeout(600)
def test_ingest_bench_lands_every_row():
    figures = run_bench("ingest")
    assert figures["rows"] == 100_000
    assert figures["floor_seconds"] > 0 and figures["speedup_ceiling"] > 0


@pytest.mark.timeout(600)
def test_send_bench_batches_its_calls():
    figures = run_bench("send")
    assert figures["recipients"] == 20_000
    assert figures["calls"] * 100 < figures["naive_calls"]


@pytest.mark.timeout(600)
def test_pushes_bench_loses_nothing_and_counts_nothing_twice():
    figures = run_bench("pushes")
    assert figures["lost"] == 0 and figures["double_counted"] == 0
    assert figures["pushes"] == 10_000
    assert figures["dedicated_receiver_lost"] == 0 and figures["dedicated_receiver_double_counted"] == 0
    for mounted in ("api_server", "api_server_default"):  # the receiver inside `airflow api-server`
        assert figures[f"{mounted}_lost"] == 0 and figures[f"{mounted}_double_counted"] == 0
        assert figures[f"{mounted}_pushes"] == 2_000


@pytest.mark.timeout(600)
def test_status_cycle_bench_polls_every_batch_in_few_task_instances():
    figures = run_bench("status_cycle")
    assert figures["batches"] == 100 and figures["messages"] == 100_000
    assert 5 <= figures["task_instances"] <= 10 and figures["shards"] >= 1


@pytest.mark.timeout(600)
def test_dag_parse_bench_finds_no_heavy_import():
    figures = run_bench("dag_parse", "--runs", "1")
    assert figures["heavy_imports"] == {}
    assert set(figures["files"]) == {path.name for path in (ROOT / "dags").glob("every8d_*.py")}


def test_make_bench_runs_every_benchmark_and_nothing_else():
    """``make bench`` names each ``bench/*.py`` whose docstring calls it a benchmark, and only those."""
    [line] = [s for s in (ROOT / "Makefile").read_text().splitlines() if s.startswith("BENCHMARKS :=")]
    listed = set(line.split(":=")[1].split())
    benchmarks = {
        path.stem for path in (ROOT / "bench").glob("*.py") if path.read_text().startswith('"""Benchmark:')
    }
    assert listed == benchmarks
