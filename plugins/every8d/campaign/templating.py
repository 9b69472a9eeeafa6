"""Message templates in Python's ``string.Template`` syntax, rendered a column at a time.

Why ``string.Template`` (``$name``, ``${field}``, ``$$`` for a dollar sign)
and not Jinja: a campaign text needs substitution only, no logic; the syntax
cannot run code from a UI form; and, parsed once into literal and field
parts, it renders with one Arrow kernel per batch (``binary_join_element_wise``)
instead of a Python call per row.  Airflow's own Jinja still templates the
operator's parameters, and ``{{ }}`` does not collide with ``$``.

A row whose field is null cannot be rendered: it gets a per-row error, never
a half-filled text.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

DEFAULT_TEMPLATE_ID = "default"


class TemplateError(ValueError):
    """A template is malformed or names a field the audience does not have (campaign-wide)."""


@dataclass(frozen=True)
class Field:
    name: str


@dataclass(frozen=True)
class MessageTemplate:
    """One parsed template: literal text and :class:`Field` parts in order."""

    template_id: str
    source: str
    parts: tuple[str | Field, ...]

    @classmethod
    def parse(cls, template_id: str, source: str) -> MessageTemplate:
        """Split ``source`` into parts; ``$`` not followed by a name or ``$`` is an error."""
        if not isinstance(source, str) or not source.strip():
            raise TemplateError(f"template {template_id!r} is empty")
        parts: list[str | Field] = []
        literal, position = [], 0
        for match in string.Template.pattern.finditer(source):
            literal.append(source[position : match.start()])
            position = match.end()
            if match.group("escaped") is not None:
                literal.append("$")
                continue
            name = match.group("named") or match.group("braced")
            if name is None:
                line = source.count("\n", 0, match.start()) + 1
                raise TemplateError(
                    f"template {template_id!r}: '$' at character {match.start() + 1} (line {line}) is not "
                    "followed by a name; write $$ for a dollar sign or ${field} for a field"
                )
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(Field(name))
        literal.append(source[position:])
        if "".join(literal):
            parts.append("".join(literal))
        return cls(template_id, source, tuple(parts))

    @property
    def fields(self) -> tuple[str, ...]:
        """Field names in order of first use."""
        return tuple(dict.fromkeys(p.name for p in self.parts if isinstance(p, Field)))

    def render(self, columns: Mapping[str, pa.Array], length: int) -> tuple[pa.Array, pa.Array]:
        """``(text, error)`` for ``length`` rows; ``columns`` maps each field name to its values.

        A row with a null in any field gets a null text and an error naming the field.
        """
        missing = [name for name in self.fields if name not in columns]
        if missing:
            raise TemplateError(f"template {self.template_id!r} uses unknown field(s) {missing}")
        if not self.fields:
            text = pc.fill_null(pa.nulls(length, pa.string()), "".join(p for p in self.parts))  # type: ignore[misc]
            return text, pa.nulls(length, pa.string())
        values = {name: _as_text(columns[name]) for name in self.fields}
        args = [values[p.name] if isinstance(p, Field) else p for p in self.parts]
        if len(args) == 1:  # the template is exactly one field
            text = args[0]
        else:
            text = pc.binary_join_element_wise(*args, "", null_handling="emit_null")
        error = pa.nulls(length, pa.string())
        for name in reversed(self.fields):
            error = pc.if_else(pc.is_null(values[name]), f"no value for ${{{name}}}", error)
        return text, error


def _as_text(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if pa.types.is_string(values.type):
        return values
    if pa.types.is_large_string(values.type):
        return pc.cast(values, pa.string())
    try:
        return pc.cast(values, pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise TemplateError(f"a template field of type {values.type} cannot be shown as text") from None


class TemplateSet:
    """The campaign's template(s) and how a row picks one.

    :param message: one template, or ``{template_id: template}`` for several.
    :param template_column: with several templates, the audience column naming each row's template.
    :param fields: ``{field_name: audience_column}`` renames; other fields use the column of that name.
    """

    def __init__(
        self,
        message: str | Mapping[str, str],
        *,
        template_column: str | None = None,
        fields: Mapping[str, str] | None = None,
    ) -> None:
        if isinstance(message, Mapping):
            if not message:
                raise TemplateError("no message templates given")
            if template_column is None and len(message) > 1:
                raise TemplateError("several templates need template_column to say which row uses which")
            self.templates = {str(k): MessageTemplate.parse(str(k), v) for k, v in message.items()}
        else:
            self.templates = {DEFAULT_TEMPLATE_ID: MessageTemplate.parse(DEFAULT_TEMPLATE_ID, message)}
        self.template_column = template_column if len(self.templates) > 1 or template_column else None
        self.fields = dict(fields or {})

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(f for t in self.templates.values() for f in t.fields))

    @property
    def source_columns(self) -> tuple[str, ...]:
        """Audience columns the templates read."""
        return tuple(dict.fromkeys(self.fields.get(f, f) for f in self.field_names))

    def render(
        self, batch: pa.RecordBatch, template_ids: pa.Array | None
    ) -> tuple[pa.Array, pa.Array, pa.Array]:
        """``(template_id, text, error)`` per row of ``batch`` (fields read from its columns)."""
        n = batch.num_rows
        columns = {f: batch.column(self.fields.get(f, f)) for f in self.field_names}
        if self.template_column is None or template_ids is None:
            ((tid, template),) = self.templates.items()
            text, error = template.render(columns, n)
            return pc.fill_null(pa.nulls(n, pa.string()), tid), text, error
        ids = _as_text(template_ids)
        text = pa.nulls(n, pa.string())
        error = pc.if_else(
            pc.is_null(ids),
            pa.scalar(f"no template named in column {self.template_column!r}"),
            pc.binary_join_element_wise(f"unknown template in column {self.template_column!r}: ", ids, ""),
        )
        for tid, template in self.templates.items():
            mask = pc.fill_null(pc.equal(ids, tid), False)
            if not pc.any(mask).as_py():
                continue
            rendered, failed = template.render(columns, n)
            text = pc.if_else(mask, rendered, text)
            error = pc.if_else(mask, failed, error)
        return ids, text, error
