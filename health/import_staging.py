"""The write of an import on PostgreSQL: the good rows go into a TEMP table
by COPY as pass one finds them; then one statement compares them with what
is stored under the same natural keys, counts and inserts the new ones, and
a second, when some stored row changes, updates.

This replaces, on PostgreSQL, the batches of ``_stored`` look-ups,
``bulk_create`` and ``bulk_update`` that ``health.importers`` runs on other
databases. It is used for a kind only when the result is the same:

- the model has a ``batch`` (so that undo finds what an import created) and
  a ``customer`` (whose score the import changes);
- the kind's natural key is unique in the table, so that a staged row meets
  at most one stored row. Where it is not (interactions, pulses), the batch
  path picks one of several stored rows, which a join would not do.

The TEMP table lives in the import's transaction: a failed or dry import
leaves nothing behind, and a rolled-back one takes the table with it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from typing import Any

from django.db import connection, models

STAGING_TABLE = "import_staging"

# Rows sent per COPY statement. Short COPYs keep memory flat and leave the
# transaction usable when pass one stops halfway (to learn the date order
# and start again): an open COPY that fails aborts the whole transaction.
COPY_ROWS = 10_000


def supports(
    model: type[models.Model], key: Iterable[str], fields: Iterable[str]
) -> bool:
    """Whether imports into ``model`` of rows of ``fields`` (attnames) under
    the natural ``key`` can be written set-based here."""
    if connection.vendor != "postgresql":
        return False
    names = {f.name for f in model._meta.concrete_fields}
    if not {"batch", "customer"} <= names or "customer_id" not in fields:
        return False
    key_names = {model._meta.get_field(attname).name for attname in key}
    unique_sets = [
        {f.name} for f in model._meta.concrete_fields if f.unique and not f.primary_key
    ]
    unique_sets += [
        set(constraint.fields)
        for constraint in model._meta.constraints
        if isinstance(constraint, models.UniqueConstraint)
        and constraint.fields
        and constraint.condition is None
    ]
    return key_names in unique_sets


@dataclass
class Counts:
    """What writing some rows did, and whose inputs it changed."""

    new: int = 0
    updated: int = 0
    unchanged: int = 0
    customer_ids: set[int] = field(default_factory=set)


class Staging:
    """The good rows of one import, staged in a TEMP table.

    ``fields`` are the attnames every parsed row holds (the kind's columns),
    ``key`` the natural key among them. Create it inside the import's
    transaction; ``add`` rows as pass one finds them, then ``write`` once.
    """

    def __init__(
        self, model: type[models.Model], fields: list[str], key: tuple[str, ...]
    ) -> None:
        self.model = model
        self.fields = fields
        self.key = key
        self.pending: list[tuple] = []
        self.count = 0
        # The row's values in column order; a natural key and the customer
        # make at least two fields, so this always returns a tuple.
        self._row = itemgetter(*fields)
        self._columns = [model._meta.get_field(name) for name in fields]

        quote = connection.ops.quote_name
        definitions = ", ".join(
            f"{quote(f.column)} {f.db_type(connection)}" for f in self._columns
        )
        with connection.cursor() as cursor:
            # ON COMMIT DROP is the safety net; ``write`` drops it itself, so
            # a second import in the same outer transaction can stage again.
            cursor.execute(
                f"CREATE TEMP TABLE {STAGING_TABLE} ({definitions}) ON COMMIT DROP"
            )
            # Binary COPY needs each column's type; the table knows them.
            cursor.execute(f"SELECT * FROM {STAGING_TABLE} LIMIT 0")  # noqa: S608
            self._types = [column.type_code for column in cursor.description]

    def add(self, values: dict[str, Any]) -> None:
        self.pending.append(self._row(values))
        if len(self.pending) >= COPY_ROWS:
            self.flush()

    def flush(self) -> None:
        """Send the rows added since the last flush. One COPY."""
        if not self.pending:
            return
        with (
            connection.cursor() as cursor,
            cursor.copy(f"COPY {STAGING_TABLE} FROM STDIN (FORMAT BINARY)") as copy,
        ):
            copy.set_types(self._types)
            for row in self.pending:
                copy.write_row(row)
        self.count += len(self.pending)
        self.pending = []

    def reset(self) -> None:
        """Forget every row staged so far (pass one starts again)."""
        self.pending = []
        self.count = 0
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {STAGING_TABLE}")

    def drop(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {STAGING_TABLE}")

    def write(
        self, *, present: list[str], batch_id: int | None, write: bool, now: datetime
    ) -> Counts:
        """Compare the staged rows with the stored ones under the natural
        key; with ``write``, insert the new ones (with ``batch_id``) and
        update the changed ``present`` fields of the others. Then drops the
        staging table.

        One statement joins the staged rows with the table once, counts and
        inserts; a second, only when a stored row changes, updates.
        """
        self.flush()
        if not self.count:
            self.drop()
            return Counts()

        names = _Names(self, present)
        with connection.cursor() as cursor:
            # A TEMP table is never analysed on its own; without numbers
            # the planner guesses its size.
            cursor.execute(f"ANALYZE {STAGING_TABLE}")
            cursor.execute(*self._compare_and_insert(names, batch_id, write))
            new, updated, unchanged, customer_ids = cursor.fetchone()
            if write and updated:
                cursor.execute(*self._update(names, now))
        self.drop()
        return Counts(new, updated, unchanged, set(customer_ids))

    def _compare_and_insert(
        self, names: _Names, batch_id: int | None, write: bool
    ) -> tuple[str, list[Any]]:
        """The counts of new, changed and unchanged rows and the customers
        whose inputs change; with ``write``, the new rows are inserted too.
        Every name in the SQL comes from the model's meta, quoted, and every
        value is a parameter (hence the S608 exemptions)."""
        n = names
        differs = " OR ".join(f"r.{c} IS DISTINCT FROM s.{c}" for c in n.compared)
        # Each staged row with the pk and customer of the stored row under
        # its key (none: a new row), under names no model column has.
        steps = [
            f"""matched AS MATERIALIZED (
                SELECT s.*, r.{n.pk} AS import_stored_pk,
                    r.{n.customer} AS import_stored_customer,
                    ({differs or "false"}) AS import_differs
                FROM {STAGING_TABLE} s LEFT JOIN {n.table} r ON {n.matches}
            )"""  # noqa: S608
        ]
        params: list[Any] = []
        if write:
            constants = self._constants(batch_id)
            columns = ", ".join(n.staged + [n.quote(f.column) for f, _ in constants])
            values = ", ".join(n.staged + ["%s"] * len(constants))
            params += [value for _, value in constants]
            # In the order of the natural key, so that its unique index grows
            # page by page rather than a random page per row: a million
            # readings in file order (customer after customer) took twice
            # as long.
            steps.append(
                f"""inserted AS (
                    INSERT INTO {n.table} ({columns})
                    SELECT {values} FROM matched WHERE import_stored_pk IS NULL
                    ORDER BY {", ".join(n.keys)}
                )"""  # noqa: S608
            )

        # The customers whose inputs change: those of new and changed rows,
        # and the one a changed record leaves, whose score changes too.
        sql = f"""
            WITH {", ".join(steps)}
            SELECT
                count(*) FILTER (WHERE import_stored_pk IS NULL),
                count(*) FILTER (WHERE import_stored_pk IS NOT NULL AND import_differs),
                count(*) FILTER (
                    WHERE import_stored_pk IS NOT NULL AND NOT import_differs
                ),
                ARRAY(
                    SELECT {n.customer} FROM matched
                    WHERE import_stored_pk IS NULL OR import_differs
                    UNION
                    SELECT import_stored_customer FROM matched
                    WHERE import_stored_pk IS NOT NULL AND import_differs
                )
            FROM matched
        """  # noqa: S608
        return sql, params

    def _update(self, names: _Names, now: datetime) -> tuple[str, list[Any]]:
        """The update of the stored rows whose ``present`` fields differ
        from the staged ones (and of their ``auto_now`` fields)."""
        n = names
        differs = " OR ".join(f"r.{c} IS DISTINCT FROM s.{c}" for c in n.compared)
        assignments = [f"{c} = s.{c}" for c in n.compared]
        params = []
        for f in self.model._meta.concrete_fields:
            if getattr(f, "auto_now", False):
                assignments.append(f"{n.quote(f.column)} = %s")
                params.append(f.get_db_prep_save(now, connection))
        sql = f"""
            UPDATE {n.table} r SET {", ".join(assignments)}
            FROM {STAGING_TABLE} s WHERE {n.matches} AND ({differs})
        """  # noqa: S608
        return sql, params

    def _constants(self, batch_id: int | None) -> list[tuple[models.Field, Any]]:
        """The columns a new record gets that the file does not give, with
        the values a new instance would save: its defaults, the time for
        ``auto_now_add`` and the import batch."""
        template = self.model()
        constants = []
        for f in self.model._meta.concrete_fields:
            if f.primary_key or f.attname in self.fields:
                continue
            if f.name == "batch":
                value = batch_id
            else:
                value = f.get_db_prep_save(f.pre_save(template, add=True), connection)
            constants.append((f, value))
        return constants


class _Names:
    """The quoted names the statements of one staged import use."""

    def __init__(self, staging: Staging, present: list[str]) -> None:
        meta = staging.model._meta
        self.quote = quote = connection.ops.quote_name
        self.table = quote(meta.db_table)
        self.pk = quote(meta.pk.column)
        self.customer = quote(meta.get_field("customer").column)
        column = {f.attname: quote(f.column) for f in staging._columns}
        self.staged = [column[name] for name in staging.fields]
        self.keys = [column[name] for name in staging.key]
        self.matches = " AND ".join(f"r.{c} = s.{c}" for c in self.keys)
        # The fields the file gives, beyond the key, are the ones compared.
        self.compared = [column[name] for name in present if name not in staging.key]
