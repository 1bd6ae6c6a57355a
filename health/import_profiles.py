"""Import profiles: another tool's export read as one canonical kind.

An ``ImportProfile`` (edited in the admin) is stored as plain fields; this
module checks one and turns it into the ``importers.Mapping`` the importer
reads a file with, so the command, the admin and the tests take the same
path. ``resolve`` lets ``import_data KIND FILE`` name a kind or a profile.
"""

from __future__ import annotations

import codecs
from typing import Any

from health import importers
from health.models import ImportProfile


class UnknownKind(LookupError):
    """Neither a canonical kind nor the name of a profile."""


def words(text: str) -> frozenset[str]:
    """A comma-separated list of words, lower-cased, empty ones dropped."""
    return frozenset(w.strip().lower() for w in text.split(",") if w.strip())


def mapping_for(profile: ImportProfile) -> importers.Mapping:
    return importers.Mapping(
        columns=dict(profile.columns),
        constants={k: str(v) for k, v in profile.constants.items()},
        value_maps={
            column: {str(k): str(v) for k, v in values.items()}
            for column, values in profile.value_maps.items()
        },
        options=importers.Options(
            encoding=profile.encoding,
            date_order=profile.date_order,
            decimal_comma=profile.decimal_comma,
            thousands_separator=profile.thousands_separator,
            true_words=words(profile.true_words),
            false_words=words(profile.false_words),
            missing_values=words(profile.missing_values),
            customer_field=profile.customer_field,
        ),
    )


def resolve(name: str) -> tuple[str, importers.Mapping | None, str]:
    """(kind, mapping, profile name) for a canonical kind or a profile's
    name. Raises UnknownKind naming what there is. One query for a
    profile."""
    if name in importers.SPECS:
        return name, None, ""
    profile = ImportProfile.objects.filter(name=name).first()
    if profile is None:
        profiles = list(ImportProfile.objects.values_list("name", flat=True))
        raise UnknownKind(
            f"{name!r} is neither a kind ({', '.join(importers.KINDS)}) nor a "
            f"profile ({', '.join(profiles) or 'none yet'})"
        )
    return profile.kind, mapping_for(profile), profile.name


def _is_text_map(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )


def problems(
    *,
    kind: str,
    columns: Any,
    constants: Any,
    value_maps: Any,
    encoding: str = "",
    decimal_comma: bool = False,
    thousands_separator: str = "",
) -> dict[str, list[str]]:
    """What is wrong with a profile, by field; empty when nothing is."""
    found: dict[str, list[str]] = {}

    def add(name: str, message: str) -> None:
        found.setdefault(name, []).append(message)

    spec = importers.SPECS.get(kind)
    if spec is None:
        add("kind", f"is not one of {', '.join(importers.KINDS)}")
        return found
    known = set(spec.header)

    if not _is_text_map(columns):
        add("columns", 'must map column names to headers, e.g. {"customer": "Id"}')
        columns = {}
    if not isinstance(constants, dict) or not all(
        isinstance(v, str | int | float) for v in constants.values()
    ):
        add("constants", 'must map column names to values, e.g. {"kind": "new"}')
        constants = {}
    if not isinstance(value_maps, dict) or not all(
        _is_text_map(v) for v in value_maps.values()
    ):
        add("value_maps", 'must map column names to {"file value": "value"} maps')
        value_maps = {}

    for name, mapping in [
        ("columns", columns),
        ("constants", constants),
        ("value_maps", value_maps),
    ]:
        unknown = sorted(set(mapping) - known)
        if unknown:
            add(
                name,
                f"{', '.join(unknown)}: not a column of {kind} "
                f"({', '.join(spec.header)})",
            )
    empty = sorted(c for c, header in columns.items() if not header.strip())
    if empty:
        add("columns", f"{', '.join(empty)}: no file header given")
    both = sorted(set(columns) & set(constants))
    if both:
        add("constants", f"{', '.join(both)}: also read from a column")
    unmapped = [
        c.name
        for c in spec.columns
        if c.required and c.name not in columns and c.name not in constants
    ]
    if unmapped:
        add(
            "columns",
            f"required columns with no header or constant: {', '.join(unmapped)}",
        )

    if encoding:
        try:
            codecs.lookup(encoding)
        except LookupError:
            add("encoding", f"{encoding!r} is not an encoding Python knows")
    decimal = "," if decimal_comma else "."
    if thousands_separator and thousands_separator == decimal:
        add(
            "thousands_separator",
            "cannot be the decimal separator too",
        )
    return found
