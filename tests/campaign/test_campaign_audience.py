"""Audiences from DataFrames, Parquet, CSV and SQL arrive as the same Arrow batches."""

from __future__ import annotations

import gzip

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from every8d.campaign.audience import AudienceError, SqlAudience, iter_audience

COLUMNS = ["mobile", "name"]


def frame(n: int = 5) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "mobile": [f"09120000{i:02d}" for i in range(n)],
            "name": [f"n{i}" for i in range(n)],
            "other": range(n),
        }
    )


def collect(source, columns=COLUMNS, **kwargs) -> pa.Table:
    batches = list(iter_audience(source, columns, **kwargs))
    return pa.Table.from_batches(batches).cast(pa.schema([(c, pa.string()) for c in columns]))


def test_dataframe_in_batches_keeps_order_and_only_needed_columns():
    batches = list(iter_audience(frame(5), COLUMNS, batch_rows=2))
    assert [b.num_rows for b in batches] == [2, 2, 1]
    assert batches[0].schema.names == COLUMNS
    assert collect(frame(5)).column("mobile").to_pylist()[-1] == "0912000004"


def test_callable_and_arrow_table():
    assert collect(lambda: frame(3)).num_rows == 3
    assert collect(pa.Table.from_pandas(frame(4))).num_rows == 4


def test_parquet_file_directory_and_object_storage_path(tmp_path):
    from airflow.sdk import ObjectStoragePath

    pq.write_table(pa.Table.from_pandas(frame(5)), tmp_path / "a.parquet")
    (tmp_path / "dir").mkdir()
    pq.write_table(pa.Table.from_pandas(frame(3)), tmp_path / "dir" / "part-0.parquet")
    assert collect(str(tmp_path / "a.parquet")).num_rows == 5
    assert collect(ObjectStoragePath(f"file://{tmp_path / 'a.parquet'}")).num_rows == 5
    assert collect(str(tmp_path / "dir")).num_rows == 3


def test_csv_keeps_leading_zeros_and_reads_gzip(tmp_path):
    frame(3).to_csv(tmp_path / "a.csv", index=False)
    with gzip.open(tmp_path / "a.csv.gz", "wt") as handle:
        frame(3).to_csv(handle, index=False)
    for name in ("a.csv", "a.csv.gz"):
        table = collect(str(tmp_path / name))
        assert table.column("mobile").to_pylist() == ["0912000000", "0912000001", "0912000002"]


def test_empty_csv_cells_are_null(tmp_path):
    (tmp_path / "a.csv").write_text("mobile,name\n0912000001,\n,Bo\n")
    table = collect(str(tmp_path / "a.csv"))
    assert table.column("name").to_pylist() == [None, "Bo"]
    assert table.column("mobile").to_pylist() == ["0912000001", None]


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda tmp: frame(2), id="dataframe"),
        pytest.param(
            lambda tmp: (frame(2).to_csv(tmp / "x.csv", index=False), str(tmp / "x.csv"))[1], id="csv"
        ),
        pytest.param(
            lambda tmp: (
                pq.write_table(pa.Table.from_pandas(frame(2)), tmp / "x.parquet"),
                str(tmp / "x.parquet"),
            )[1],
            id="parquet",
        ),
    ],
)
def test_missing_columns_are_named_before_any_row(tmp_path, make):
    with pytest.raises(
        AudienceError, match=r"no column\(s\) \['phone'\]; it has \['mobile', 'name', 'other'\]"
    ):
        list(iter_audience(make(tmp_path), ["phone"]))


def test_unknown_sources_and_formats_are_refused(tmp_path):
    with pytest.raises(AudienceError, match="cannot read an audience from a int"):
        list(iter_audience(42, COLUMNS))
    with pytest.raises(AudienceError, match="audience_format"):
        list(iter_audience(str(tmp_path / "x.xlsx"), COLUMNS))


def test_sql_audience_streams_from_postgres(postgres_database, monkeypatch):
    import psycopg2

    monkeypatch.setenv("AIRFLOW_CONN_CAMPAIGN_PG", postgres_database)
    with psycopg2.connect(postgres_database) as conn, conn.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS campaign_audience")
        cursor.execute("CREATE TABLE campaign_audience (id int, mobile text, name text)")
        cursor.execute(
            "INSERT INTO campaign_audience SELECT i, '0912' || lpad(i::text, 6, '0'), 'n' || i "
            "FROM generate_series(1, 2500) AS i"
        )
    source = SqlAudience(
        "SELECT mobile, name, id FROM campaign_audience WHERE id > %s ORDER BY id", "campaign_pg", (0,)
    )
    batches = list(iter_audience(source, ["mobile", "name"], batch_rows=1000))
    assert [b.num_rows for b in batches] == [1000, 1000, 500]
    assert batches[0].column("mobile")[0].as_py() == "0912000001"
    with pytest.raises(AudienceError, match="no column"):
        list(iter_audience(source, ["phone"]))
