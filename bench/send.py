"""Benchmark: a personalized campaign through the send operator's path, versus one POST per row.

A sandbox gateway (``--no-record``) receives the same audience both ways, in
the same run:

- project: ``CampaignRun`` (what ``Every8dSendSmsOperator`` executes): Parquet
  audience read in Arrow batches, numbers checked, texts rendered, plan and
  ledger in a DuckDB warehouse, ``SendParamSMS`` 500 recipients a call, 4 at a
  time, every chunk committed ``in_flight`` before and ``sent`` after its call;
- naive: a loop of one ``requests.post`` to ``sendSMS`` per row (its own
  session, keep-alive).  It is timed on a sample (5,000 rows; 1,000 with
  ``--quick``) and extrapolated linearly to the audience, as the output says.

Each side runs in a child process, so peak RSS is its own.  A third child
plans (dry run) a 1,000,000-row Parquet audience to show memory stays flat.

    .venv/bin/python bench/send.py            # 100,000 recipients
    .venv/bin/python bench/send.py --quick    # 20,000 recipients, 200,000-row dry run
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "plugins"))

MESSAGE = "Hi $name, your order $order ships today. Code $code."


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def write_audience(path: Path, rows: int) -> None:
    """``rows`` distinct numbers with personalized fields, written as Parquet in slices (flat memory)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    step = 100_000
    schema = pa.schema(
        [("mobile", pa.string()), ("name", pa.string()), ("order", pa.string()), ("code", pa.string())]
    )
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, step):
            ids = pa.array(range(start, min(start + step, rows)), pa.int64())
            text = pc.cast(ids, pa.string())
            padded = pc.utf8_lpad(text, 8, "0")
            writer.write_table(
                pa.table(
                    {
                        "mobile": pc.binary_join_element_wise(
                            "09", pc.utf8_lpad(pc.cast(pc.add(ids, 10_000_000), pa.string()), 8, "0"), ""
                        ),
                        "name": pc.binary_join_element_wise("Customer ", text, ""),
                        "order": pc.binary_join_element_wise("A", padded, ""),
                        "code": pc.utf8_slice_codeunits(pc.binary_join_element_wise(padded, "XK", ""), 3, 9),
                    },
                    schema=schema,
                )
            )


# -- children -----------------------------------------------------------------------------------------


def child_project(base_url: str, audience: str, work: str, dry_run: bool) -> dict:
    os.environ["AIRFLOW_HOME"] = work
    os.environ["AIRFLOW_CONN_EVERY8D_DEFAULT"] = json.dumps(
        {"conn_type": "every8d", "host": base_url, "login": "demo", "password": "secret"}
    )
    from every8d.campaign.audience import ColumnMap
    from every8d.campaign.config import CampaignSpec
    from every8d.campaign.runner import CampaignRun, RunOptions
    from every8d.hooks.every8d import Every8dHook
    from every8d.warehouse import open_warehouse

    spec = CampaignSpec(
        kind="sms", message=MESSAGE, columns=ColumnMap(mobile="mobile", name="name"), apply_suppressions=False
    )
    warehouse = open_warehouse(f"duckdb://{work}/bench.duckdb")
    started = time.perf_counter()
    summary = CampaignRun(
        spec,
        campaign_id="bench",
        hook=Every8dHook(),
        warehouse=warehouse,
        options=RunOptions(dry_run=dry_run, check_credit=not dry_run),
    ).run(audience)
    seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 2), "summary": summary, "peak_rss_mb": peak_rss_mb()}


def child_naive(base_url: str, audience: str, sample: int) -> dict:
    """One POST per row: the text rendered with string.Template, the number sent as written."""
    import string

    import pyarrow.parquet as pq
    import requests

    rows = pq.read_table(audience).slice(0, sample).to_pylist()
    template = string.Template(MESSAGE)
    url = f"{base_url}/API21/HTTP/sendSMS.ashx"
    session = requests.Session()
    session.trust_env = False
    started = time.perf_counter()
    failures = 0
    for row in rows:
        body = {"UID": "demo", "PWD": "secret", "MSG": template.substitute(row), "DEST": row["mobile"]}
        answer = session.post(url, data=body, timeout=30)
        failures += answer.status_code != 200 or answer.text.startswith("-")
    seconds = time.perf_counter() - started
    return {
        "seconds": round(seconds, 3),
        "rows": len(rows),
        "failures": failures,
        "peak_rss_mb": peak_rss_mb(),
    }


def run_child(*args: str) -> dict:
    result = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"child {args[0]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# -- main ------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 recipients; finishes in under a minute")
    parser.add_argument("--recipients", type=int)
    parser.add_argument("--naive-sample", type=int)
    parser.add_argument("--plan-rows", type=int, help="rows of the dry-run audience (default 1,000,000)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        role, *rest = args.child
        if role == "project":
            out = child_project(rest[0], rest[1], rest[2], rest[3] == "dry")
        else:
            out = child_naive(rest[0], rest[1], int(rest[2]))
        print(json.dumps(out, default=str))
        return

    recipients = args.recipients or (20_000 if args.quick else 100_000)
    sample = min(args.naive_sample or (1_000 if args.quick else 5_000), recipients)
    plan_rows = args.plan_rows or (200_000 if args.quick else 1_000_000)

    from every8d.sandbox import SandboxServer

    with (
        tempfile.TemporaryDirectory(prefix="every8d-bench-send-") as tmp,
        SandboxServer(record=False, credit=10**9) as sandbox,
    ):
        tmp_path = Path(tmp)
        audience = tmp_path / "audience.parquet"
        write_audience(audience, recipients)
        print(f"audience: {recipients:,} personalized recipients; sandbox at {sandbox.base_url}", flush=True)

        (tmp_path / "project").mkdir()
        project = run_child("project", sandbox.base_url, str(audience), str(tmp_path / "project"), "send")
        summary = project["summary"]
        assert summary["sent"] == recipients, summary
        print(
            f"project: {project['seconds']}s, {summary['calls']} HTTP calls, "
            f"peak RSS {project['peak_rss_mb']} MB",
            flush=True,
        )

        naive = run_child("naive", sandbox.base_url, str(audience), str(sample))
        assert naive["failures"] == 0, naive
        naive_seconds = naive["seconds"] * recipients / naive["rows"]
        print(
            f"naive: {naive['rows']:,} rows in {naive['seconds']}s, extrapolated to {recipients:,}: "
            f"{naive_seconds:.1f}s ({recipients:,} calls)",
            flush=True,
        )

        big = tmp_path / "big.parquet"
        write_audience(big, plan_rows)
        (tmp_path / "plan").mkdir()
        plan = run_child("project", sandbox.base_url, str(big), str(tmp_path / "plan"), "dry")
        print(
            f"dry run of a {plan_rows:,}-row Parquet audience: {plan['seconds']}s, "
            f"peak RSS {plan['peak_rss_mb']} MB",
            flush=True,
        )

    figures = {
        "bench": "send",
        "recipients": recipients,
        "calls": summary["calls"],
        "naive_calls": recipients,
        "seconds": project["seconds"],
        "naive_seconds": round(naive_seconds, 2),
        "naive_measured_rows": naive["rows"],
        "naive_extrapolated": naive["rows"] < recipients,
        "speedup": round(naive_seconds / project["seconds"], 1),
        "call_reduction": round(recipients / summary["calls"], 1),
        "peak_rss_mb": project["peak_rss_mb"],
        "plan_rows": plan_rows,
        "plan_seconds": plan["seconds"],
        "plan_peak_rss_mb": plan["peak_rss_mb"],
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
