"""The warehouse contract on a real DuckDB file and a real Postgres database."""

from __future__ import annotations

import multiprocessing
import threading
from datetime import UTC, datetime
from decimal import Decimal

import duckdb
import pyarrow as pa
import pytest

from every8d import settings
from every8d.warehouse import ENV_WAREHOUSE, open_warehouse
from every8d.warehouse.base import translate_placeholders

SCHEMA = pa.schema(
    [
        pa.field("order", pa.string(), nullable=False),  # a reserved word, on purpose
        pa.field("count", pa.int32()),
        pa.field("at", pa.timestamp("us", tz="UTC")),
        pa.field("points", pa.decimal128(12, 2)),
        pa.field("final", pa.bool_()),
        pa.field("note", pa.string()),
    ]
)
T0 = datetime(2026, 5, 1, 8, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fresh_table(request):
    if "warehouse" in request.fixturenames:
        request.getfixturevalue("warehouse").execute("DROP TABLE IF EXISTS wh_test")


def _rows(n: int, count: int = 1, final: bool = False) -> pa.Table:
    return pa.table(
        {
            "order": [f"k{i:05d}" for i in range(n)],
            "count": pa.array([count] * n, pa.int32()),
            "at": pa.array([T0] * n, SCHEMA.field("at").type),
            "points": pa.array([Decimal("1.50")] * n, SCHEMA.field("points").type),
            "final": [final] * n,
            "note": ["" if i % 2 else None for i in range(n)],
        },
        schema=SCHEMA,
    )


def test_load_twice_keeps_counts_and_types(warehouse):
    warehouse.ensure_table("wh_test", SCHEMA, ["order"])
    warehouse.ensure_table("wh_test", SCHEMA, ["order"])  # idempotent
    data = _rows(12_345)
    assert warehouse.upsert("wh_test", data, ["order"]) == 12_345
    warehouse.upsert("wh_test", data, ["order"])
    result = warehouse.query_arrow('SELECT * FROM wh_test ORDER BY "order"')
    assert result.num_rows == 12_345
    assert result.schema.field("at").type == pa.timestamp("us", tz="UTC")
    assert result.schema.field("points").type == pa.decimal128(12, 2)
    assert result.schema.field("count").type == pa.int32()
    assert result.to_pydict() == data.to_pydict()  # empty text and NULL survive distinctly


def test_upsert_only_if_keeps_final_rows(warehouse):
    warehouse.ensure_table("wh_test", SCHEMA, ["order"])
    warehouse.append("wh_test", _rows(4, count=1, final=False).slice(0, 2))
    warehouse.append("wh_test", _rows(4, count=2, final=True).slice(2, 2))
    changed = warehouse.upsert(
        "wh_test",
        _rows(4, count=9, final=False),
        ["order"],
        update_columns=["count", "final"],
        only_if='NOT wh_test."final"',
    )
    assert changed == 2
    counts = warehouse.query_arrow('SELECT "count" FROM wh_test ORDER BY "order"').column("count").to_pylist()
    assert counts == [9, 9, 2, 2]


def test_upsert_do_nothing_and_append_batches(warehouse):
    warehouse.ensure_table("wh_test", SCHEMA, ["order"])
    batches = _rows(3000).to_batches(max_chunksize=700)
    assert warehouse.append("wh_test", iter(batches)) == 3000
    assert warehouse.append("wh_test", iter([])) == 0
    warehouse.upsert("wh_test", _rows(3001, count=5), ["order"], update_columns=[])
    result = warehouse.query_arrow('SELECT "count", count(*) AS n FROM wh_test GROUP BY "count" ORDER BY 1')
    assert result.to_pylist() == [{"count": 1, "n": 3000}, {"count": 5, "n": 1}]


def test_transaction_rolls_back_and_nests(warehouse):
    warehouse.ensure_table("wh_test", SCHEMA, ["order"])
    with pytest.raises(RuntimeError), warehouse.transaction():
        warehouse.append("wh_test", _rows(5))
        with warehouse.transaction():
            warehouse.execute('UPDATE wh_test SET "count" = ? WHERE "order" = ?', [7, "k00001"])
        raise RuntimeError("boom")
    assert warehouse.query_arrow("SELECT count(*) AS n FROM wh_test").column("n")[0].as_py() == 0
    with warehouse.transaction():
        warehouse.append("wh_test", _rows(5))
        warehouse.execute('UPDATE wh_test SET "count" = ? WHERE "order" = ?', [7, "k00001"])
    result = warehouse.query_arrow(
        """SELECT sum("count") AS s FROM wh_test WHERE (note IS NULL OR "order" = ?) AND "order" <> '?%'""",
        ["k00001"],
    )
    assert result.column("s")[0].as_py() == 1 + 7 + 1 + 1  # k00000, k00001 (now 7), k00002, k00004


def test_schema_evolution_adds_columns(warehouse):
    warehouse.ensure_table("wh_test", SCHEMA.remove(SCHEMA.get_field_index("note")), ["order"])
    warehouse.append("wh_test", _rows(2).drop_columns(["note"]))
    warehouse.ensure_table("wh_test", SCHEMA, ["order"])
    assert warehouse.table_columns("wh_test")[-1] == "note"
    assert warehouse.query_arrow("SELECT note FROM wh_test").column("note").null_count == 2


def test_ensure_index_creates_it_once(warehouse):
    """Idempotent on every engine (MySQL 8 has no CREATE INDEX IF NOT EXISTS: the dialect looks it up)."""
    warehouse.ensure_table("wh_test", SCHEMA, ["order"])
    for _ in range(2):
        warehouse.ensure_index("wh_test_count", "wh_test", ("count", "at"))
    lookups = {
        "duckdb": "SELECT count(*) FROM duckdb_indexes() WHERE index_name = 'wh_test_count'",
        "postgres": "SELECT count(*) FROM pg_indexes WHERE indexname = 'wh_test_count'",
        "mysql": "SELECT count(DISTINCT index_name) FROM information_schema.statistics "
        "WHERE table_schema = DATABASE() AND index_name = 'wh_test_count'",
    }
    indexes = warehouse.query_arrow(lookups[warehouse.sql.name]).column(0)[0].as_py()
    assert indexes == (1 if warehouse.sql.secondary_indexes else 0)  # DuckDB: none, by choice


def test_query_batches_streams_and_keeps_schema_when_empty(warehouse):
    warehouse.ensure_table("wh_test", SCHEMA, ["order"])
    empty = warehouse.query_arrow("SELECT * FROM wh_test")
    assert empty.num_rows == 0 and empty.schema.names == SCHEMA.names
    warehouse.append("wh_test", _rows(2500))
    sizes = [
        b.num_rows for b in warehouse.query_batches('SELECT * FROM wh_test ORDER BY "order"', batch_size=1000)
    ]
    assert sum(sizes) == 2500 and max(sizes) <= 1024


def test_placeholders_skip_literals():
    sql = "SELECT '?', \"a?\" FROM t WHERE x = ? AND y LIKE '10%'"
    assert translate_placeholders(sql, "%s", escape_percent=True) == (
        "SELECT '?', \"a?\" FROM t WHERE x = %s AND y LIKE '10%%'"
    )


def test_default_target_uses_env_then_airflow_home(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_WAREHOUSE, raising=False)
    monkeypatch.delenv(settings.legacy_name("warehouse"), raising=False)
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    warehouse = open_warehouse()
    assert warehouse.path == str(tmp_path / "every8d" / "every8d.duckdb")
    monkeypatch.setenv(ENV_WAREHOUSE, "duckdb:///:memory:")
    assert open_warehouse().path == ":memory:"
    with pytest.raises(ValueError):
        open_warehouse("sqlite:///x.db")


def _hold_lock(path: str, ready, release) -> None:
    connection = duckdb.connect(path)
    ready.set()
    release.wait(30)
    connection.close()


def test_duckdb_waits_for_another_process_lock(tmp_path):
    path = str(tmp_path / "locked.duckdb")
    duckdb.connect(path).close()
    context = multiprocessing.get_context("spawn")
    ready, release = context.Event(), context.Event()
    holder = context.Process(target=_hold_lock, args=(path, ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        impatient = open_warehouse(f"duckdb://{path}")
        impatient.lock_timeout = 0.2
        with pytest.raises(duckdb.IOException):
            impatient.execute("SELECT 1")
        patient = open_warehouse(f"duckdb://{path}")
        threading.Timer(0.5, release.set).start()  # the holder lets go while `patient` is waiting
        assert patient.execute("CREATE TABLE t AS SELECT 1 AS x") >= -1
        assert patient.query_arrow("SELECT x FROM t").column("x").to_pylist() == [1]
    finally:
        release.set()
        holder.join(30)
