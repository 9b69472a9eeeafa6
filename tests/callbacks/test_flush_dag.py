"""The ``every8d_push_flush`` DAG runs for real with ``dag.test()`` on a migrated metadata DB."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

from every8d.callbacks.journal import Journal
from every8d.callbacks.params import parse_push
from every8d.tracking.batches import register_batches
from every8d.tracking.pushes import merge_push_events
from every8d.warehouse import open_warehouse

DAGS = Path(__file__).resolve().parents[2] / "dags"


def test_the_flush_dag_moves_the_journal_into_the_warehouse(airflow_home, tmp_path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    target = f"duckdb://{tmp_path / 'dag.duckdb'}"
    journal = tmp_path / "journal.sqlite3"
    monkeypatch.setenv("AIRFLOW__EVERY8D__WAREHOUSE", target)
    monkeypatch.setenv("AIRFLOW__EVERY8D__PUSH_JOURNAL", str(journal))
    events = [
        parse_push(
            urlencode(
                {
                    "BatchID": "dag-1",
                    "RM": f"091200000{i}",
                    "RT": "20260301090000",
                    "STATUS": 999 if i == 0 else 100,
                    "SM": "退訂" if i == 0 else "",
                }
            ).encode()
        )
        for i in range(5)
    ]
    with Journal(journal) as j:
        j.append(events)

    bag = DagBag(dag_folder=str(DAGS / "every8d_push_flush.py"))
    assert not bag.import_errors, bag.import_errors
    dag = bag.get_dag("every8d_push_flush")
    assert dag.test().state == "success"
    assert dag.test().state == "success"  # a second run finds nothing new

    with open_warehouse(target) as wh:
        keys = wh.query_arrow("SELECT event_key FROM every8d_push_events")["event_key"].to_pylist()
        # The flush writes push events only; the push merge derives the opt-out from them.
        register_batches(
            wh,
            [
                {
                    "batch_id": "dag-1",
                    "campaign_id": None,
                    "kind": "sms",
                    "sent_at": events[0].received_at,
                    "scheduled_at": None,
                    "recipients": 5,
                    "points": None,
                    "validity_minutes": 60,
                }
            ],
        )
        assert merge_push_events(wh).replies == 1
        suppressed = wh.query_arrow("SELECT mobile FROM every8d_suppressions")["mobile"].to_pylist()
    assert sorted(keys) == sorted(e.key for e in events)
    assert suppressed == ["+886912000000"]
    with Journal(journal) as j:
        assert j.count(pending_only=True) == 0
