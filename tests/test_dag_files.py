"""Every DAG file parses cleanly and keeps heavy libraries out of parse time.

The DAG processor parses these files over and over: pandas, pyarrow, duckdb,
requests and friends must load inside tasks, never at module level.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

DAGS = sorted((Path(__file__).resolve().parent.parent / "dags").glob("*.py"))
HEAVY = ("pandas", "pyarrow", "duckdb", "requests", "matplotlib", "phonenumbers", "numpy", "fastapi")

PARSE = """
import sys, warnings
warnings.simplefilter("ignore")
from airflow.dag_processing.dagbag import DagBag
before = set(sys.modules)
bag = DagBag(dag_folder=sys.argv[1], safe_mode=False)
assert not bag.import_errors, bag.import_errors
assert bag.dags, "no DAG found"
heavy = sys.argv[2].split(",")
print("HEAVY:" + ",".join(sorted(m for m in set(sys.modules) - before if m.split(".")[0] in heavy)))
"""


def test_there_are_dag_files():
    assert {p.name for p in DAGS} >= {
        "every8d_send_campaign.py",
        "every8d_delivery_status.py",
        "every8d_analytics_report.py",
    }


@pytest.mark.parametrize("path", DAGS, ids=[p.stem for p in DAGS])
def test_dag_file_parses_without_heavy_imports(path, airflow_home):
    result = subprocess.run(
        [sys.executable, "-c", PARSE, str(path), ",".join(HEAVY)],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ.copy(),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    [line] = [line for line in result.stdout.splitlines() if line.startswith("HEAVY:")]
    imported = line.removeprefix("HEAVY:")
    assert imported == "", f"{path.name} imports {imported} at parse time"
