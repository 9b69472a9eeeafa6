"""Who gets an alert: numbers given to the notifier plus named lists kept in one Airflow Variable.

Named lists keep phone numbers out of DAG files and out of the serialized
callback kwargs of deadline alerts, and let on-call rotations change without
a deploy.  The Variable (default ``every8d_recipients``) holds a JSON object
of list name to numbers::

    {"oncall": ["+886912345678", "0987654321"], "data-team": "0911111111,0922222222"}

The notifier passes the numbers through the send policy of
:mod:`every8d.phones` (a valid mobile; no landline), in E.164 so ``0912345678``
and ``+886912345678`` are one recipient, for the send and for the dedupe ledger.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

RECIPIENTS_VARIABLE = "every8d_recipients"
# Commas, semicolons, spaces, and the brackets and quotes of a list rendered to text by a template.
_SEPARATORS = re.compile(r"[,;\s\[\]'\"]+")


class RecipientError(ValueError):
    """The recipients cannot be resolved (unknown list, bad Variable); the message holds no numbers."""


def split_numbers(value: str | Iterable[str] | None) -> list[str]:
    """Numbers from a string (comma, semicolon or space separated) or a list of strings."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    numbers: list[str] = []
    for item in items:
        numbers.extend(part for part in _SEPARATORS.split(str(item)) if part)
    return numbers


def names_of(value: str | Iterable[str] | None) -> list[str]:
    """List names from ``"oncall"``, ``"oncall,data-team"`` or ``["oncall", ...]``."""
    return split_numbers(value)


def load_named_lists(names: Iterable[str], variable: str = RECIPIENTS_VARIABLE) -> list[str]:
    """The numbers of the named lists, read from the Airflow Variable ``variable`` at call time."""
    names = list(names)
    if not names:
        return []
    from airflow.sdk import Variable

    try:
        lists: Any = Variable.get(variable, deserialize_json=True)
    except Exception as error:  # missing Variable, bad JSON: name the Variable, not its content
        raise RecipientError(
            f"cannot read recipient lists from Variable {variable!r} ({type(error).__name__})"
        ) from None
    if not isinstance(lists, Mapping):
        raise RecipientError(f"Variable {variable!r} must hold a JSON object of list name to numbers")
    numbers: list[str] = []
    for name in names:
        if name not in lists:
            raise RecipientError(f"recipient list {name!r} is not in Variable {variable!r}")
        numbers.extend(split_numbers(lists[name]))
    return numbers
