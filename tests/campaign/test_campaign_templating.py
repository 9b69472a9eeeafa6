"""string.Template syntax rendered a column at a time; bad rows get an error, not half a text."""

from __future__ import annotations

import string

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from every8d.campaign.audience import AudienceError, iter_audience
from every8d.campaign.templating import MessageTemplate, TemplateError, TemplateSet


def test_fields_literals_and_escaped_dollars():
    batch = pa.record_batch({"name": ["Amy", "Bo"], "amount": [1200, 5]})
    _, text, error = TemplateSet("Hi $name, you owe NT$$${amount}.").render(batch, None)
    assert text.to_pylist() == ["Hi Amy, you owe NT$1200.", "Hi Bo, you owe NT$5."]
    assert error.to_pylist() == [None, None]


def test_null_field_is_a_row_error():
    batch = pa.record_batch({"name": ["Amy", None]})
    _, text, error = TemplateSet("Hi $name").render(batch, None)
    assert text.to_pylist() == ["Hi Amy", None]
    assert error.to_pylist() == [None, "no value for ${name}"]


def test_several_templates_chosen_per_row():
    batch = pa.record_batch({"tpl": ["a", "b", "zz", None], "name": ["A", "B", "C", "D"]})
    templates = TemplateSet({"a": "Promo", "b": "Hi $name"}, template_column="tpl")
    ids, text, error = templates.render(batch, batch.column("tpl"))
    assert ids.to_pylist() == ["a", "b", "zz", None]
    assert text.to_pylist() == ["Promo", "Hi B", None, None]
    assert error[2].as_py().startswith("unknown template")
    assert error[3].as_py().startswith("no template named")


def test_field_renames():
    batch = pa.record_batch({"first name": ["Amy"]})
    templates = TemplateSet("Hi $first", fields={"first": "first name"})
    assert templates.source_columns == ("first name",)
    assert templates.render(batch, None)[1].to_pylist() == ["Hi Amy"]


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        pytest.param("costs $5", "character 7", id="dollar-digit"),
        pytest.param("", "empty", id="empty"),
        pytest.param({"a": "x", "b": "y"}, "template_column", id="several-without-column"),
    ],
)
def test_bad_templates_fail_before_any_row(message, problem):
    with pytest.raises(TemplateError, match=problem):
        TemplateSet(message)


def test_missing_column_is_named():
    """The audience reader (what a campaign runs) names a column the template uses and the audience lacks."""
    needed = ["mobile", *TemplateSet("Pay ${amount}").source_columns]
    with pytest.raises(AudienceError, match=r"\['amount'\]"):
        next(iter_audience(pa.table({"name": ["a"], "mobile": ["0912345678"]}), needed))


names = st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True)
# Lone surrogates cannot come out of a CSV, Parquet file or database as text, nor be encoded as UTF-8.
safe_text = st.text(
    alphabet=st.characters(blacklist_characters="$", blacklist_categories=("Cs",)), max_size=15
)


@settings(deadline=None)
@given(
    st.lists(st.tuples(safe_text, names), min_size=1, max_size=4), st.lists(safe_text, min_size=1, max_size=5)
)
def test_agrees_with_string_template(parts, values):
    source = "".join(f"{literal}${{{name}}}" for literal, name in parts)
    template = MessageTemplate.parse("t", source)
    columns = {name: pa.array(values) for name in template.fields}
    text, error = template.render(columns, len(values))
    for row, value in enumerate(values):
        expected = string.Template(source).substitute(dict.fromkeys(template.fields, value))
        assert text[row].as_py() == expected
        assert error[row].as_py() is None
