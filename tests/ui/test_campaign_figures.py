"""The Campaign tab's figures: live while messages are pending, final after, numbers masked."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from every8d.hooks.every8d import Every8dHook
from every8d.tracking.analyst import refresh_analyst_db
from every8d.tracking.sync import sync_batch
from every8d.tracking.views import apply_views, drop_views
from every8d.ui.app import render_campaign
from every8d.ui.figures import campaign_figures, mask_phone, open_reader
from every8d.warehouse import open_warehouse
from every8d.warehouse.tables import TRACKING_TABLES


def _numbers(count: int) -> list[str]:
    return [f"0912{index:06d}" for index in range(count)]


@pytest.fixture(params=["duckdb", "postgres"])
def ui_warehouse(request, tmp_path, monkeypatch):
    """A DuckDB warehouse (the UI reads its analysts' file) or Postgres (the UI reads it directly)."""
    if request.param == "duckdb":
        target = f"duckdb://{tmp_path / 'warehouse.duckdb'}"
    else:
        monkeypatch.setenv("AIRFLOW_CONN_EVERY8D_UI_PG", request.getfixturevalue("postgres_database"))
        target = "airflow://every8d_ui_pg"
    monkeypatch.setenv("AIRFLOW__EVERY8D__WAREHOUSE", target)
    warehouse = open_warehouse(target)
    drop_views(warehouse)
    for spec in TRACKING_TABLES:
        warehouse.execute(f"DROP TABLE IF EXISTS {spec.name}")
    yield target, warehouse
    warehouse.close()


def _refresh(warehouse, tmp_path):
    if warehouse.dialect == "duckdb":
        refresh_analyst_db(warehouse, tmp_path / "warehouse.analyst.duckdb")


def test_a_live_campaign_reloads_and_a_final_one_does_not(every8d_conn_env, ui_warehouse, tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tracking"))
    from helpers import send_batch

    sandbox = every8d_conn_env
    target, warehouse = ui_warehouse
    sandbox.set_outcomes({"0003": 101})
    batch = send_batch(sandbox, warehouse, _numbers(12), campaign="autumn")
    sync_batch(warehouse, Every8dHook(), batch, now=batch.sent_at)  # right after sending: still pending
    apply_views(warehouse)
    _refresh(warehouse, tmp_path)
    with open_reader(target) as reader:
        live = campaign_figures(reader, "autumn")
    assert live["sent"] == 12 and live["pending"] > 0 and live["live"]
    assert '<meta http-equiv="refresh"' in render_campaign(live, "rejects", "UTC")

    sandbox.advance(3600)
    sync_batch(warehouse, Every8dHook(), batch, now=batch.sent_at + timedelta(hours=1))
    _refresh(warehouse, tmp_path)
    with open_reader(target) as reader:
        final = campaign_figures(reader, "autumn")
    expected = {m["status"] for m in sandbox.messages(batch.batch_id)}
    assert final["pending"] == 0 and not final["live"]
    assert final["delivered"] + final["failed"] + final["expired"] == 12
    assert {r["status"] for r in final["failed_by_reason"]} == expected - {100}
    assert sum(b["messages"] for b in final["time_to_deliver"]) == final["delivered"]
    page = render_campaign(final, "rejects", "Asia/Taipei")
    assert "refresh" not in page.split("<body>")[0]


@given(st.from_regex(r"\+?[0-9 \-]{1,20}", fullmatch=True))
def test_a_masked_number_shows_at_most_its_country_code_and_last_two_digits(number):
    masked = mask_phone(number)
    assert len(masked) == len(number)
    digits = sum(ch.isdigit() for ch in number)
    visible = sum(ch.isdigit() for ch in masked)
    assert visible <= 5
    assert visible <= max(digits - 4, 0)  # at least four digits hidden, all of a short one


def test_a_full_number_never_survives_masking():
    assert mask_phone("+886912345678") == "+886•••••••78"
    assert mask_phone("0912345678") == "••••••••78"
    assert mask_phone(None) is None
