"""The operator's argument handling: Jinja-rendered strings read back, ids stable across tries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest

from every8d.operators.send import (
    Every8dSendMmsOperator,
    Every8dSendSmsOperator,
    as_bool,
    as_datetime,
    as_decimal,
    default_campaign_id,
    describe,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("True", True), ("false", False), (True, True), ("", False), ("None", False), ("1", True)],
)
def test_booleans_survive_jinja(value, expected):
    assert as_bool(value, "x") is expected


def test_numbers_and_times_survive_jinja():
    assert as_decimal("1500", "max_points") == Decimal(1500)
    assert as_decimal("None", "max_points") is None
    assert as_datetime("2026-05-01T09:00:00+08:00", "schedule_at") == datetime(2026, 5, 1, 1, 0, tzinfo=UTC)
    for bad in ("soon", "-5"):
        with pytest.raises(ValueError, match="max_points"):
            as_decimal(bad, "max_points")
    with pytest.raises(ValueError, match="timezone-aware"):
        as_datetime("2026-05-01T09:00:00", "schedule_at")


def test_default_campaign_id_is_stable_per_task_instance_and_mapped_index():
    ti = SimpleNamespace(dag_id="d", task_id="t", run_id="manual__1", map_index=-1, try_number=3)
    assert default_campaign_id({"ti": ti}) == "d.t.manual__1"
    ti.map_index = 4
    assert default_campaign_id({"ti": ti}) == "d.t.manual__1.4"


def test_exactly_one_audience_source():
    with pytest.raises(ValueError, match="exactly one"):
        Every8dSendSmsOperator(task_id="x", message="hi")
    with pytest.raises(ValueError, match="sql_conn_id"):
        Every8dSendSmsOperator(task_id="x", message="hi", sql="SELECT 1")


def test_spec_from_rendered_strings():
    operator = Every8dSendSmsOperator(
        task_id="x",
        audience="/tmp/a.parquet",
        message='{"a": "Hi $name", "b": "Promo"}',
        template_column="t",
        dedupe_on="mobile, text",
        allow_international="True",
        schedule_at="2026-05-01T09:00:00+08:00",
        validity_minutes="600",
    )
    spec = operator.build_spec()
    assert spec.message == {"a": "Hi $name", "b": "Promo"}
    assert spec.dedupe_on == ("mobile", "text") and spec.allow_international is True
    assert spec.validity_minutes == 600 and spec.schedule_at.utcoffset() == timedelta(hours=8)
    spec.validate()


def test_mms_image_is_checked_before_anything_is_read(tmp_path):
    (tmp_path / "menu.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
    good = Every8dSendMmsOperator(
        task_id="m", audience="/x.parquet", message="Menu", image=str(tmp_path / "menu.png")
    )
    spec = good.build_spec()
    spec.validate()
    assert spec.mms_points() == Decimal(3)
    (tmp_path / "menu.bmp").write_bytes(b"BM" + b"\x00" * 100)
    bad = Every8dSendMmsOperator(
        task_id="m", audience="/x.parquet", message="Menu", image=str(tmp_path / "menu.bmp")
    )
    with pytest.raises(ValueError, match="not a JPEG, PNG or GIF"):
        bad.build_spec().validate()


def test_descriptions_hold_no_data():
    import pandas as pd

    assert describe(pd.DataFrame({"mobile": ["0912345678"] * 3})) == "<DataFrame with 3 rows>"
