"""A demo-like campaign, run as `make demo` runs it: the real DAGs under ``airflow dags test``.

Used by the analysts' test (an analyst session stays open through the whole
run) and by the Campaign tab's browser test (which reads what this run left).
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from scripts.demo import demo_environment

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "include" / "sample_audience.csv"


@dataclass
class DemoRun:
    root: Path
    env: dict[str, str]
    warehouse: Path
    analyst_db: Path
    parquet: Path
    campaign_id: str = ""
    run_id: str = ""
    batch_ids: list[str] = field(default_factory=list)
    logs: dict[str, str] = field(default_factory=dict)


def small_audience(path: Path, members: int = 60) -> Path:
    """The sample audience's first rows plus one bad number and one duplicate (so there are rejects)."""
    with open(SAMPLE, newline="", encoding="utf-8") as source:
        rows = list(csv.reader(source))
    header, body = rows[0], [r for r in rows[1:] if r[0].startswith("09")][:members]
    body += [["not a number", "張Kevin", "白金", "1233"], body[0]]
    with open(path, "w", newline="", encoding="utf-8") as out:
        csv.writer(out).writerows([header, *body])
    return path


def demo_env(root: Path, airflow_home: Path, connection_json: str) -> DemoRun:
    """The demo's environment (scripts/demo.py builds it for `make demo`), with the session's Airflow home."""
    return DemoRun(
        root=root,
        env=demo_environment(root, airflow_home, connection_json),
        warehouse=root / "every8d.duckdb",
        analyst_db=root / "every8d.analyst.duckdb",
        parquet=root / "parquet",
    )


def run_dag(run: DemoRun, dag_id: str, conf: dict | None = None) -> None:
    """``airflow dags test`` one DAG; fail with its log tail when it does not succeed."""
    command = [sys.executable, "-m", "airflow", "dags", "test", dag_id]
    if conf is not None:
        command += ["-c", json.dumps(conf)]
    result = subprocess.run(command, env=run.env, capture_output=True, text=True, timeout=900)
    run.logs[dag_id] = result.stdout + result.stderr
    if result.returncode != 0:
        raise AssertionError(f"{dag_id} failed:\n{run.logs[dag_id][-4000:]}")


def last_campaign(run: DemoRun) -> tuple[str, str]:
    """(campaign_id, run_id) of the newest campaign in the analysts' file."""
    import duckdb

    with duckdb.connect(str(run.analyst_db), read_only=True) as connection:
        return connection.execute(
            "SELECT campaign_id, run_id FROM every8d_campaigns ORDER BY planned_at DESC LIMIT 1"
        ).fetchone()


ANALYST = textwrap.dedent(
    """
    import json, sys, duckdb
    connection = duckdb.connect(sys.argv[1], read_only=True)
    print(json.dumps(connection.execute("SELECT count(*) FROM every8d_messages").fetchone()), flush=True)
    for line in sys.stdin:  # one query per line until stdin closes, on the same open session
        row = connection.execute(line).fetchone()
        print(json.dumps([str(v) for v in row]), flush=True)
    """
)


class AnalystSession:
    """An analyst's process holding a read-only DuckDB session on a file until closed."""

    def __init__(self, path: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", ANALYST, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.first = json.loads(self._line())

    def _line(self) -> str:
        line = self.process.stdout.readline()
        if not line:
            raise AssertionError(f"the analyst's session died: {self.process.stderr.read()[-2000:]}")
        return line

    def query(self, sql: str) -> list[str]:
        self.process.stdin.write(sql.replace("\n", " ") + "\n")
        self.process.stdin.flush()
        return json.loads(self._line())

    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=30)
