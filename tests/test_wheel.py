"""The built wheel works on its own: views and report from an installed package, not the source tree."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

SEED = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime, timedelta
    from decimal import Decimal
    import pyarrow as pa
    import every8d
    from every8d.warehouse import open_warehouse
    from every8d.warehouse.tables import BATCHES, MESSAGES, ensure_tracking_tables

    assert every8d.__file__.startswith(sys.argv[2]), every8d.__file__  # the installed copy, not the source
    sent = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
    with open_warehouse(sys.argv[1]) as warehouse:
        ensure_tracking_tables(warehouse)
        warehouse.append(BATCHES.name, pa.Table.from_pylist([{
            "batch_id": "b1", "campaign_id": "wheel", "kind": "sms", "sent_at": sent, "recipients": 3,
            "points": Decimal("3.00"), "state": "closed"}], schema=BATCHES.schema))
        rows = [("+886912000001", 100, "delivered", True), ("+886912000002", 100, "delivered", True),
                ("+886912000003", 101, "failed", True)]
        warehouse.append(MESSAGES.name, pa.Table.from_pylist([{
            "batch_id": "b1", "mobile": mobile, "seq": 1, "campaign_id": "wheel", "kind": "sms",
            "sent_at": sent,
            "received_at": sent + timedelta(seconds=30) if group == "delivered" else None,
            "points": Decimal("1.00"), "status": status, "status_group": group, "meaning_en": "x",
            "is_final": final, "final_at": sent + timedelta(seconds=40), "first_seen_at": sent,
            "updated_at": sent, "source": "poll"} for mobile, status, group, final in rows],
            schema=MESSAGES.schema))
    print("seeded")
    """
)


def _site_packages(python: Path) -> str:
    return subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_the_wheel_installs_and_runs_the_views_and_the_report_dag(tmp_path):
    source = tmp_path / "src"  # a copy, so building leaves nothing in the work tree
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(
        REPO / "plugins" / "every8d",
        source / "plugins" / "every8d",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    wheel = next(dist.glob("airflow_provider_every8d-*.whl"))

    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    assert "every8d/tracking/sql/20_campaign_summary.sql" in names
    assert "every8d/ui/app.py" in names
    # test and benchmark tools stay out of the runtime package (they live in bench/)
    assert not [n for n in names if n.endswith(("/loadgen.py", "/loadtest.py", "campaign/states.py"))]
    metadata = (
        zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    )
    requires = [
        line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist:")
    ]
    assert "Requires-Python: >=3.11" in metadata.splitlines()  # datetime.UTC, Template.get_identifiers
    assert not [r for r in requires if r.startswith("tenacity")]
    assert [r for r in requires if r.startswith("matplotlib")] and all(
        "extra ==" in r for r in requires if r.startswith("matplotlib")
    )  # the report's charts: an extra
    assert all("extra ==" in r for r in requires if r.startswith("pandas"))  # DataFrame audiences only

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(_site_packages(python))
    # The dependencies come from this venv's site-packages (a path, whose .pth files, like the
    # editable install of this project, are not processed); the provider itself from the wheel.
    (site / "every8d-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stderr[-2000:]
    assert (site / "every8d" / "tracking" / "sql").is_dir()

    home = tmp_path / "airflow"
    warehouse = tmp_path / "warehouse.duckdb"
    report = tmp_path / "report"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW", "EVERY8D"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__EVERY8D__WAREHOUSE": f"duckdb:///{warehouse}",
            "AIRFLOW__EVERY8D__REPORT_DIR": str(report),
            "PYTHONPATH": "",
        }
    )
    run = {"env": env, "cwd": tmp_path, "capture_output": True, "text": True, "timeout": 600}
    seeded = subprocess.run([str(python), "-c", SEED, f"duckdb:///{warehouse}", str(site)], **run)
    assert seeded.returncode == 0, seeded.stderr[-3000:]
    migrated = subprocess.run([str(python), "-m", "airflow", "db", "migrate"], **run)
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    dag_run = subprocess.run(
        [str(python), "-m", "airflow", "dags", "test", "every8d_analytics_report"], **run
    )
    assert dag_run.returncode == 0, (dag_run.stdout + dag_run.stderr)[-4000:]

    index = (report / "index.html").read_text(encoding="utf-8")
    assert "wheel" in index
    assert list(report.glob("*.html"))
    query = subprocess.run(
        [
            str(venv / "bin" / "every8d"),
            "query",
            "--db",
            str(tmp_path / "warehouse.analyst.duckdb"),
            "--format",
            "csv",
            "SELECT campaign_id, sent, delivered, failed FROM every8d_campaign_summary",
        ],
        **run,
    )
    assert query.returncode == 0, query.stderr
    assert query.stdout.splitlines()[1] == "wheel,3,2,1"
