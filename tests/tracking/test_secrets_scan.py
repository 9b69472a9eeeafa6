"""Issue 12's secrets scan: run representative flows under faults, then search everything they produced.

Flows: sends (plain, filtered and cut, personalized with dirty names, MMS
refused, bad numbers, -98), reads under echo pages (500, 502, HTML and text
200), redirects, a trickled answer, status syncs with cut and echoed pages,
a push merge, a Parquet export and the delivery-status DAG under
``dag.test()`` (XCom and task logs in the Airflow metadata DB and log folder).

Then: the password, raw or URL-/form-/HTML-encoded, appears nowhere: not in
captured logs, stdout/stderr, exceptions (text, repr, causes, attributes
shown to people), tables, XCom or any file written.  No full phone number
appears in any log line or exception message.
"""

from __future__ import annotations

import html
import json
import logging
import os
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from every8d.client.results import ParamRecipient
from every8d.errors import Every8dError
from every8d.hooks.every8d import Every8dHook
from every8d.sandbox.catcher import RequestCatcher
from every8d.tracking.pushes import merge_push_events
from every8d.tracking.sync import SyncOptions, sync_batch
from every8d.warehouse import open_warehouse
from every8d.warehouse.parquet import ParquetExporter
from every8d.warehouse.tables import TRACKING_TABLES
from tests.metadata_db import file_texts
from tests.tracking.helpers import send_batch

UID = "scan-user"
PASSWORD = "Zq-秘密 9f/3c!&=%"
PHONES = ["0912345671", "0912345672", "0912345673"]
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def password_forms() -> set[str]:
    forms = {PASSWORD, quote(PASSWORD, safe=""), quote_plus(PASSWORD), quote(PASSWORD), html.escape(PASSWORD)}
    return forms | {form.lower() for form in forms if "%" in form}


def phone_forms() -> set[str]:
    return {form for phone in PHONES for form in (phone, "+886" + phone[1:], "886" + phone[1:])}


@pytest.fixture
def scan_env(sandbox, tmp_path, monkeypatch, airflow_home):
    sandbox.create_account(UID, PASSWORD, 5000)
    monkeypatch.setenv(
        "AIRFLOW_CONN_EVERY8D_DEFAULT",
        json.dumps(
            {
                "conn_type": "every8d",
                "host": sandbox.base_url,
                "login": UID,
                "password": PASSWORD,
                "extra": {"timeout": 2, "read_retries": 1, "deadline": 1.5},
            }
        ),
    )
    target = f"duckdb://{tmp_path / 'scan.duckdb'}"
    monkeypatch.setenv("AIRFLOW__EVERY8D__WAREHOUSE", target)
    monkeypatch.setenv("AIRFLOW__EVERY8D__PARQUET_ROOT", str(tmp_path / "parquet"))
    monkeypatch.setenv("AIRFLOW__EVERY8D__PUSH_JOURNAL", str(tmp_path / "journal.sqlite3"))
    return target


def test_no_password_anywhere_and_no_phone_number_in_any_log_or_error(
    sandbox, scan_env, tmp_path, caplog, capfd
):
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []

    def attempt(call):
        try:
            return call()
        except (Every8dError, ValueError) as error:
            errors.append(error)
            return None

    hook = Every8dHook()
    warehouse = open_warehouse(scan_env)

    # -- sends, clean and faulted
    batch = send_batch(sandbox, warehouse, PHONES)
    attempt(lambda: hook.send_sms("bad", ["0912ab3456", PHONES[0]]))  # -306 names the number
    hook.send_sms("again", PHONES[:2])
    attempt(lambda: hook.send_sms_filtered("again", PHONES[:2]))  # -98 lists both numbers
    sandbox.inject_fault("sendSMS4FilterMessage", "cut", at=-4)
    attempt(lambda: hook.send_sms_filtered("again", PHONES))
    for options in ({"status": 200}, {"status": 200, "message": "Err "}, {}):
        sandbox.inject_fault("sendSMS", "echo", **options)
        attempt(lambda: hook.send_sms("echoed", PHONES))
    sandbox.inject_fault("SendParamSMS", "echo")
    attempt(
        lambda: hook.send_param_sms([ParamRecipient(PHONES[0], ["x"], name="Tab\tName")], template="%field1%")
    )
    attempt(lambda: hook.send_mms("pic", [PHONES[0], "+85291234567"], image=PNG))

    # -- reads under echo pages, redirects and a trickle
    for endpoint, options in [
        ("getCredit", {}),
        ("getCredit", {"status": 200, "message": "E "}),
        ("getDeliveryStatus", {"status": 502}),
        ("getReplyMessage", {"status": 200}),
        ("eraseBooking", {}),
    ]:
        sandbox.inject_fault(endpoint, "echo", count=2, **options)
    attempt(hook.get_credit)
    attempt(hook.get_credit)
    attempt(lambda: list(hook.iter_delivery_status(batch.batch_id)))
    attempt(lambda: list(hook.iter_replies(batch.batch_id)))
    attempt(lambda: hook.erase_booking(batch.batch_id))
    sandbox.clear_faults()
    with RequestCatcher() as catcher:
        for status in (302, 307):
            sandbox.inject_fault("*", "redirect", status=status, location=catcher.url, count=2)
            attempt(hook.get_credit)
            attempt(lambda: hook.send_sms("moved", PHONES))
        sandbox.clear_faults()
    assert catcher.requests == []
    sandbox.inject_fault("getCredit", "trickle", delay=0.4)
    attempt(hook.get_credit)

    # -- syncs: cut pages, an echoed page, then a whole one
    spool = tmp_path / "spools"
    spool.mkdir()
    options = SyncOptions(spool_dir=spool)
    for fault in [
        {"kind": "cut", "rows": 2},
        {"kind": "cut", "at": -3},
        {"kind": "echo", "status": 200, "message": "x"},
    ]:
        sandbox.inject_fault("getDeliveryStatus", **fault)
        attempt(lambda: sync_batch(warehouse, hook, batch, now=batch.sent_at, options=options))
    sandbox.add_reply(batch.batch_id, "+886" + PHONES[1][1:], "thanks")
    result = sync_batch(warehouse, hook, batch, now=batch.sent_at, options=options)
    assert result.listed == 3
    merge_push_events(warehouse)
    ParquetExporter().export(warehouse)
    tables = {
        spec.name: warehouse.query_arrow(f"SELECT * FROM {spec.name}").to_pylist()
        for spec in TRACKING_TABLES
        if not getattr(spec, "duckdb_temporary", False)
    }
    warehouse.close()
    hook.close()

    # -- the delivery-status DAG with a faulted page, then a clean run (XCom, task logs)
    from airflow.dag_processing.dagbag import DagBag

    dags = Path(__file__).resolve().parents[2] / "dags"
    send_batch(sandbox, open_warehouse(scan_env), PHONES)
    sandbox.inject_fault("getDeliveryStatus", "echo", count=2)
    dag = DagBag(dag_folder=str(dags / "every8d_delivery_status.py")).get_dag("every8d_delivery_status")
    dag.test()
    sandbox.clear_faults()
    dag.test()
    xcom = _xcom_values()
    # The shard tasks' results (counts, and the errors of the faulted run) are the DAG's XCom.
    assert any("polled" in value for value in xcom), "the DAG's XCom must be part of the scan"

    # -- the scan
    out, err = capfd.readouterr()
    logs = caplog.text + out + err
    error_texts = [text for error in errors for text in _texts(error)]
    assert len(errors) >= 15, [type(e).__name__ for e in errors]
    files = file_texts([tmp_path, Path(os.environ["AIRFLOW_HOME"])])
    assert any(name.endswith(".parquet") for name in files) and any(
        name.endswith(".duckdb") for name in files
    )
    everything = {
        "logs": logs,
        "xcom": "\n".join(xcom),
        "tables": json.dumps(tables, default=str),
        **{f"error {i}": text for i, text in enumerate(error_texts)},
        **files,
    }
    for where, text in everything.items():
        leaked = [form for form in password_forms() if form in text]
        assert not leaked, f"the password appears in {where}"
    for where, text in [("logs", logs), *((f"error {i}", t) for i, t in enumerate(error_texts))]:
        shown = [phone for phone in phone_forms() if phone in text]
        assert not shown, f"a phone number appears in {where}: {text[:300]}"
    assert any(PHONES[0] in " ".join(getattr(e, "numbers", ())) for e in errors)  # kept for code, not shown


def _texts(error: BaseException) -> list[str]:
    texts = [str(error), repr(error)]
    for linked in (error.__cause__, error.__context__):
        if linked is not None:
            texts += [str(linked), repr(linked)]
    return texts + [
        str(getattr(error, name, "")) for name in ("body_excerpt", "reason", "problem", "target_host")
    ]


def _xcom_values() -> list[str]:
    """Every XCom value in the metadata DB, read through Airflow's own session (``dag.test`` wrote them
    through it; a second raw SQLite connection beside it once failed with "disk I/O error")."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return [str(value) for value in session.scalars(select(XComModel.value))]
