"""Imports of the canonical kinds (users, customers, readings, tickets, nps,
opportunities, interactions, pulses) from CSV or XLSX files.

Each kind is one declarative ``Spec``: its columns, the parser of each, which
are required, its natural key and the rules that span columns. The rules of
a kind therefore read in one place, in ``SPECS``.

An import makes two passes over the file, streaming it both times:

1. *validate*: parse every row, resolve references (customers, users,
   metrics, roles) against maps loaded once, and collect every bad row. Only
   compact data is kept: the natural keys seen (to catch a key twice in one
   file), the numbers of bad lines and the error messages.
2. *write*: in one transaction, parse the good rows again and, a batch at a
   time, compare them with what is stored under the same natural keys, then
   create or update in bulk. A dry run compares without writing.

A file with a bad row writes nothing unless the bad rows are to be skipped.
Natural keys make a second import of the same file change nothing.
"""

from __future__ import annotations

import csv
import logging
import math
import re
from collections.abc import Callable, Hashable, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import models, transaction
from django.utils import timezone

from health import jobs
from health.models import (
    Customer,
    ImportBatch,
    Interaction,
    Metric,
    MetricReading,
    NpsResponse,
    Opportunity,
    Pulse,
    Ticket,
)
from workbench.roles import ROLES

logger = logging.getLogger(__name__)

# Rows compared and written per round trip. A batch costs a fixed handful of
# queries, so the cost of an import grows with rows / BATCH_SIZE.
BATCH_SIZE = 1000

Progress = Callable[[int, int], None]


class BadValue(ValueError):
    """A cell that cannot be used; the message is the reason a person reads."""


class ImportFailed(Exception):
    """The file cannot be imported as it is; nothing was written."""

    def __init__(self, message: str, errors: list[str]) -> None:
        super().__init__("\n".join([message, *errors]))
        self.errors = errors


# --- What rows refer to ------------------------------------------------------

# An email that more than one user has names no one in particular.
AMBIGUOUS = -1


class Lookups:
    """The things rows refer to, loaded once per import (one query per map
    the kind needs) and kept as compact maps while the file streams past."""

    def __init__(self, needs: Iterable[str]) -> None:
        needs = set(needs)
        self.customers: dict[str, int] = {}
        self.users: dict[str, int] = {}
        self.usernames: set[str] = set()
        self.metrics: dict[str, tuple[int, str]] = {}
        self.roles: dict[str, int] = {}

        if "customers" in needs:
            self.customers = dict(
                Customer.objects.values_list("external_id", "pk").iterator()
            )
        if "users" in needs:
            for pk, username, email in (
                get_user_model()
                .objects.values_list("pk", "username", "email")
                .iterator()
            ):
                self.usernames.add(username.lower())
                if email:
                    key = email.lower()
                    self.users[key] = AMBIGUOUS if key in self.users else pk
        if "metrics" in needs:
            self.metrics = {
                key: (pk, source)
                for pk, key, source in Metric.objects.values_list("pk", "key", "source")
            }
        if "roles" in needs:
            self.roles = dict(
                Group.objects.filter(name__in=ROLES).values_list("name", "pk")
            )


# --- Parsers -----------------------------------------------------------------

# A parser turns the stripped, non-empty text of a cell into the value that
# lands in the model, or raises BadValue with the reason.
Parser = Callable[[str, Lookups], Any]

ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
TRUE_WORDS = {"true", "1", "yes"}
FALSE_WORDS = {"false", "0", "no"}


def text(model: type[models.Model], name: str) -> Parser:
    limit = model._meta.get_field(name).max_length

    def parse(value: str, lookups: Lookups) -> str:
        if limit and len(value) > limit:
            raise BadValue(f"is longer than {limit} characters")
        return value

    return parse


def long_text(value: str, lookups: Lookups) -> str:
    return value


def iso_date(value: str, lookups: Lookups) -> date:
    try:
        if not ISO_DATE.fullmatch(value):
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise BadValue(f"{value!r} is not a date in YYYY-MM-DD form") from None


def iso_datetime(value: str, lookups: Lookups) -> datetime:
    """ISO 8601; a date-time without an offset is UTC."""
    try:
        if not ISO_DATE.match(value):
            raise ValueError
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise BadValue(f"{value!r} is not an ISO 8601 date-time") from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def number(value: str, lookups: Lookups) -> float:
    try:
        result = float(value)
    except ValueError:
        raise BadValue(f"{value!r} is not a number") from None
    if not math.isfinite(result):
        raise BadValue(f"{value!r} is not a finite number")
    return result


def money(model: type[models.Model], name: str) -> Parser:
    """A decimal rounded half up to the field's places, within its digits."""
    model_field = model._meta.get_field(name)
    places = Decimal(1).scaleb(-model_field.decimal_places)
    limit = Decimal(10) ** (model_field.max_digits - model_field.decimal_places)

    def parse(value: str, lookups: Lookups) -> Decimal:
        try:
            result = Decimal(value)
        except InvalidOperation:
            raise BadValue(f"{value!r} is not a number") from None
        if not result.is_finite():
            raise BadValue(f"{value!r} is not a finite number")
        result = result.quantize(places, rounding=ROUND_HALF_UP)
        if abs(result) >= limit:
            raise BadValue(f"{value!r} is too large")
        return result

    return parse


def whole_number(low: int, high: int) -> Parser:
    def parse(value: str, lookups: Lookups) -> int:
        try:
            result = int(value)
        except ValueError:
            raise BadValue(f"{value!r} is not a whole number") from None
        if not low <= result <= high:
            raise BadValue(f"{value!r} is not between {low} and {high}")
        return result

    return parse


def sentiment(value: str, lookups: Lookups) -> int:
    if value not in {"-1", "0", "1", "+1"}:
        raise BadValue(f"{value!r} is not -1, 0 or 1")
    return int(value)


def boolean(value: str, lookups: Lookups) -> bool:
    word = value.lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise BadValue(f"{value!r} is not true/false, 1/0 or yes/no")


def choice(choices: type[models.TextChoices]) -> Parser:
    allowed = list(choices.values)

    def parse(value: str, lookups: Lookups) -> str:
        word = value.lower()
        if word not in allowed:
            raise BadValue(f"{value!r} is not one of {', '.join(allowed)}")
        return word

    return parse


def customer(value: str, lookups: Lookups) -> int:
    pk = lookups.customers.get(value)
    if pk is None:
        raise BadValue(f"no customer has external id {value!r}")
    return pk


def user(value: str, lookups: Lookups) -> int:
    pk = lookups.users.get(value.lower())
    if pk is None:
        raise BadValue(f"no user has email {value!r}")
    if pk == AMBIGUOUS:
        raise BadValue(f"more than one user has email {value!r}")
    return pk


def imported_metric(value: str, lookups: Lookups) -> int:
    found = lookups.metrics.get(value)
    if found is None:
        raise BadValue(f"no metric has key {value!r}")
    pk, source = found
    if source != Metric.Source.IMPORTED:
        raise BadValue(
            f"metric {value!r} is derived from activity records, not imported"
        )
    return pk


def email(value: str, lookups: Lookups) -> str:
    try:
        validate_email(value)
    except ValidationError:
        raise BadValue(f"{value!r} is not an email address") from None
    return value.lower()


def role(value: str, lookups: Lookups) -> int:
    pk = lookups.roles.get(value)
    if pk is None:
        raise BadValue(f"{value!r} is not a role ({', '.join(ROLES)})")
    return pk


# --- Specs -------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    name: str
    field: str  # the model attribute the parsed value lands in
    parse: Parser
    required: bool = True
    default: Any = None  # the value of an empty optional cell


# A rule across the columns of a parsed row: (column, reason) when broken.
RowCheck = Callable[[dict[str, Any], Lookups], tuple[str, str] | None]


@dataclass(frozen=True)
class Spec:
    kind: str
    model: type[models.Model]
    columns: tuple[Column, ...]
    key: tuple[str, ...]  # fields of the natural key
    needs: frozenset[str] = frozenset()  # the maps of Lookups it uses
    checks: tuple[RowCheck, ...] = ()
    # Turns a natural key into something smaller to remember; a file of a
    # million readings keeps a million of them during validation.
    compact_key: Callable[[tuple], Hashable] = tuple

    @property
    def header(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def key_columns(self) -> list[str]:
        by_field = {c.field: c.name for c in self.columns}
        return [by_field[f] for f in self.key]

    def key_of(self, values: dict[str, Any]) -> tuple:
        return tuple(values[f] for f in self.key)


def closed_after_opened(opened: str, closed: str, closed_column: str) -> RowCheck:
    def check(values: dict[str, Any], lookups: Lookups) -> tuple[str, str] | None:
        if values[closed] is not None and values[closed] < values[opened]:
            return closed_column, f"is before {opened}"
        return None

    return check


def new_user_has_free_username(
    values: dict[str, Any], lookups: Lookups
) -> tuple[str, str] | None:
    """A new user's username is their email; it must be free and fit."""
    existing = lookups.users.get(values["email"])
    if existing == AMBIGUOUS:
        return "email", f"more than one user has email {values['email']!r}"
    if existing is None:
        limit = get_user_model()._meta.get_field("username").max_length
        if len(values["email"]) > limit:
            return "email", f"is longer than {limit} characters, too long a username"
        if values["email"] in lookups.usernames:
            return "email", "is the username of a user with another email"
    return None


def reading_key(key: tuple) -> int:
    # Customer and metric ids and a date ordinal packed into one int: a third
    # of the memory of the tuple. Ordinals stay below 2**22, metric ids do too.
    customer_id, metric_id, observed_on = key
    return (customer_id << 44) | (metric_id << 22) | observed_on.toordinal()


User = get_user_model()

SPECS: dict[str, Spec] = {
    spec.kind: spec
    for spec in [
        Spec(
            kind="users",
            model=User,
            columns=(
                Column("email", "email", email),
                Column("first_name", "first_name", text(User, "first_name"), False, ""),
                Column("last_name", "last_name", text(User, "last_name"), False, ""),
                Column("role", "role", role),
            ),
            key=("email",),
            needs=frozenset({"users", "roles"}),
            checks=(new_user_has_free_username,),
        ),
        Spec(
            kind="customers",
            model=Customer,
            columns=(
                Column("external_id", "external_id", text(Customer, "external_id")),
                Column("name", "name", text(Customer, "name")),
                Column("segment", "segment", text(Customer, "segment"), False, ""),
                Column("arr", "arr", money(Customer, "arr"), False, Decimal("0.00")),
                Column("owner_email", "owner_id", user, False),
                Column("customer_since", "customer_since", iso_date, False),
                Column("renewal_date", "renewal_date", iso_date, False),
                Column("churned_on", "churned_on", iso_date, False),
            ),
            key=("external_id",),
            needs=frozenset({"users"}),
        ),
        Spec(
            kind="readings",
            model=MetricReading,
            columns=(
                Column("customer", "customer_id", customer),
                Column("metric", "metric_id", imported_metric),
                Column("value", "value", number),
                Column("observed_on", "observed_on", iso_date),
            ),
            key=("customer_id", "metric_id", "observed_on"),
            needs=frozenset({"customers", "metrics"}),
            compact_key=reading_key,
        ),
        Spec(
            kind="tickets",
            model=Ticket,
            columns=(
                Column("external_id", "external_id", text(Ticket, "external_id")),
                Column("customer", "customer_id", customer),
                Column("opened_at", "opened_at", iso_datetime),
                Column("closed_at", "closed_at", iso_datetime, False),
                Column("priority", "priority", text(Ticket, "priority"), False, ""),
                Column("escalated", "escalated", boolean, False, False),
                Column("satisfaction", "satisfaction", number, False),
            ),
            key=("external_id",),
            needs=frozenset({"customers"}),
            checks=(closed_after_opened("opened_at", "closed_at", "closed_at"),),
        ),
        Spec(
            kind="nps",
            model=NpsResponse,
            columns=(
                Column("customer", "customer_id", customer),
                Column("contact", "contact", text(NpsResponse, "contact")),
                Column("score", "score", whole_number(0, 10)),
                Column("responded_at", "responded_at", iso_datetime),
                Column("comment", "comment", long_text, False, ""),
            ),
            key=("customer_id", "contact", "responded_at"),
            needs=frozenset({"customers"}),
        ),
        Spec(
            kind="opportunities",
            model=Opportunity,
            columns=(
                Column("external_id", "external_id", text(Opportunity, "external_id")),
                Column("customer", "customer_id", customer),
                Column("product", "product", text(Opportunity, "product"), False, ""),
                Column("kind", "kind", choice(Opportunity.Kind)),
                Column("stage", "stage", choice(Opportunity.Stage)),
                Column(
                    "amount",
                    "amount",
                    money(Opportunity, "amount"),
                    False,
                    Decimal("0.00"),
                ),
                Column("created_on", "created_on", iso_date),
                Column("closed_on", "closed_on", iso_date, False),
            ),
            key=("external_id",),
            needs=frozenset({"customers"}),
            checks=(closed_after_opened("created_on", "closed_on", "closed_on"),),
        ),
        Spec(
            kind="interactions",
            model=Interaction,
            columns=(
                Column("customer", "customer_id", customer),
                Column("csm_email", "csm_id", user),
                Column("kind", "kind", choice(Interaction.Kind)),
                Column("occurred_at", "occurred_at", iso_datetime),
                Column("sentiment", "sentiment", sentiment, False, 0),
                Column("summary", "summary", long_text, False, ""),
            ),
            key=("customer_id", "occurred_at", "kind", "csm_id"),
            needs=frozenset({"customers", "users"}),
        ),
        Spec(
            kind="pulses",
            model=Pulse,
            columns=(
                Column("customer", "customer_id", customer),
                Column("csm_email", "csm_id", user),
                Column("rating", "rating", whole_number(1, 5)),
                Column("entered_at", "entered_at", iso_datetime),
                Column("note", "note", long_text, False, ""),
            ),
            key=("customer_id", "csm_id", "entered_at"),
            needs=frozenset({"customers", "users"}),
        ),
    ]
}

KINDS = tuple(SPECS)


# --- Reading files -----------------------------------------------------------


def _cell_text(value: Any) -> str:
    """A spreadsheet cell as the text a CSV file would hold."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        if value.time() == datetime.min.time() and value.tzinfo is None:
            return value.date().isoformat()
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _csv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        line = 1
        try:
            for cells in reader:
                # A quoted cell may span lines; a row starts on the line after
                # the end of the one before.
                if any(cell.strip() for cell in cells):
                    yield line, [cell.strip() for cell in cells]
                line = reader.line_num + 1
        except UnicodeDecodeError as exc:
            raise ImportFailed(
                f"{path.name}: not UTF-8 text near line {line} ({exc.reason})", []
            ) from None
        except csv.Error as exc:
            raise ImportFailed(f"{path.name}: line {line}: {exc}", []) from None


def _xlsx_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    from openpyxl import load_workbook

    workbook = load_workbook(path, read_only=True, data_only=True)
    try:
        sheet = workbook.worksheets[0]
        for line, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            cells = [_cell_text(value) for value in values]
            if any(cells):
                yield line, cells
    finally:
        workbook.close()


def read_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line, cells) for every non-blank row, the header first; streamed."""
    if path.suffix.lower() in {".xlsx", ".xlsm"}:
        return _xlsx_rows(path)
    return _csv_rows(path)


def _positions(spec: Spec, path: Path, header: list[str]) -> list[int]:
    """Where each column of the spec sits in the file; unknown, missing or
    repeated headers are an error naming them."""
    names = [name.strip().lower() for name in header]
    while names and not names[-1]:
        names.pop()

    problems = []
    expected = spec.header
    missing = [name for name in expected if name not in names]
    unknown = [name or "(empty)" for name in names if name not in expected]
    repeated = sorted({name for name in names if name and names.count(name) > 1})
    if missing:
        problems.append(f"missing columns: {', '.join(missing)}")
    if unknown:
        problems.append(f"unknown columns: {', '.join(unknown)}")
    if repeated:
        problems.append(f"repeated columns: {', '.join(repeated)}")
    if problems:
        raise ImportFailed(
            f"{path.name}, line 1: the header does not match the {spec.kind} "
            f"kind ({', '.join(expected)})",
            problems,
        )
    return [names.index(name) for name in expected]


# --- Validating --------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    line: int
    column: str | None
    reason: str

    def __str__(self) -> str:
        if self.column is None:
            return f"line {self.line}: {self.reason}"
        return f"line {self.line}, column {self.column}: {self.reason}"


def parse_row(
    spec: Spec, positions: list[int], line: int, cells: list[str], lookups: Lookups
) -> tuple[dict[str, Any] | None, list[Problem]]:
    """The model values of one row, or None and what is wrong with it."""
    problems = []
    width = len(positions)
    if len(cells) > width and any(cells[width:]):
        problems.append(
            Problem(line, None, f"has {len(cells)} fields, the header {width}")
        )

    values: dict[str, Any] = {}
    for column, position in zip(spec.columns, positions, strict=True):
        value = cells[position] if position < len(cells) else ""
        if not value:
            if column.required:
                problems.append(Problem(line, column.name, "is required"))
            values[column.field] = column.default
            continue
        try:
            values[column.field] = column.parse(value, lookups)
        except BadValue as exc:
            problems.append(Problem(line, column.name, str(exc)))

    if problems:
        return None, problems
    for check in spec.checks:
        broken = check(values, lookups)
        if broken:
            problems.append(Problem(line, *broken))
    return (None if problems else values), problems


@dataclass
class Validation:
    positions: list[int]
    good: int = 0
    bad_lines: set[int] = field(default_factory=set)
    problems: list[Problem] = field(default_factory=list)
    rejects_path: Path | None = None


class RejectsFile:
    """The bad rows of a file, as they were, with the line and the reason;
    created on the first bad row only."""

    def __init__(self, path: Path, header: list[str]) -> None:
        self.path = path
        self.header = header
        self.handle = None
        self.writer = None

    def add(self, line: int, cells: list[str], problems: list[Problem]) -> None:
        if self.writer is None:
            self.handle = self.path.open("w", encoding="utf-8", newline="")
            self.writer = csv.writer(self.handle)
            self.writer.writerow([*self.header, "line", "reason"])
        padded = cells + [""] * (len(self.header) - len(cells))
        reason = "; ".join(
            f"{p.column}: {p.reason}" if p.column else p.reason for p in problems
        )
        self.writer.writerow([*padded, line, reason])

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()


def validate(
    spec: Spec, path: Path, lookups: Lookups, rejects_path: Path | None = None
) -> Validation:
    """Pass one: every bad row of the file, without writing to the database.
    With ``rejects_path``, bad rows are copied there with their reasons."""
    seen: dict[Hashable, int] = {}
    key_names = ", ".join(spec.key_columns)

    with closing(read_rows(path)) as rows:
        first = next(rows, None)
        if first is None:
            raise ImportFailed(f"{path.name}: the file is empty", [])
        header_line, header = first
        if header_line != 1:
            raise ImportFailed(f"{path.name}: line 1 must be the header", [])
        result = Validation(positions=_positions(spec, path, header))
        rejects = RejectsFile(rejects_path, header) if rejects_path else None

        try:
            for line, cells in rows:
                values, problems = parse_row(
                    spec, result.positions, line, cells, lookups
                )
                if values is not None:
                    key = spec.compact_key(spec.key_of(values))
                    earlier = seen.get(key)
                    if earlier is None:
                        seen[key] = line
                        result.good += 1
                        continue
                    reason = f"same {key_names} as line {earlier}"
                    problems = [Problem(line, spec.key_columns[0], reason)]

                result.bad_lines.add(line)
                result.problems.extend(problems)
                if rejects is not None:
                    rejects.add(line, cells, problems)
                    result.rejects_path = rejects.path
        finally:
            if rejects is not None:
                rejects.close()

    return result


# --- Writing -----------------------------------------------------------------


@dataclass
class Counts:
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    customer_ids: set[int] = field(default_factory=set)


def _stored(spec: Spec, keys: list[tuple]) -> dict[tuple, tuple[int, dict[str, Any]]]:
    """(pk, stored values) under each natural key of a batch. One query.

    A composite key is matched with one IN list per field and the exact keys
    are picked out here: "(a AND b) OR (c AND d) ..." costs far more to
    build in the ORM and SQLite refuses it past 1,000 terms.
    """
    # TODO: match composite keys exactly in SQL (row values) if imports of
    # files in random order get slow; sorted files fetch almost nothing extra.
    fields = [c.field for c in spec.columns]
    filters = {
        f"{name}__in": sorted({key[i] for key in keys})
        for i, name in enumerate(spec.key)
    }
    wanted = set(keys)
    stored = {}
    for pk, *values in spec.model._default_manager.filter(**filters).values_list(
        "pk", *fields
    ):
        row = dict(zip(fields, values, strict=True))
        key = spec.key_of(row)
        if key in wanted:
            stored[key] = (pk, row)
    return stored


def _sync_records(
    spec: Spec, rows: list[dict[str, Any]], batch: ImportBatch | None, write: bool
) -> Counts:
    """Create or update one batch of rows of a model kind: three queries."""
    counts = Counts()
    stored = _stored(spec, [spec.key_of(values) for values in rows])
    fields = [c.field for c in spec.columns]
    has_batch = any(f.name == "batch" for f in spec.model._meta.fields)
    has_updated_at = any(f.name == "updated_at" for f in spec.model._meta.fields)
    now = timezone.now()

    to_create, to_update = [], []
    for values in rows:
        found = stored.get(spec.key_of(values))
        if found is None:
            obj = spec.model(**values)
            to_create.append(obj)
            counts.new += 1
        elif found[1] != values:
            pk, before = found
            # A record that moves to another customer changes both scores.
            if "customer_id" in before:
                counts.customer_ids.add(before["customer_id"])
            obj = spec.model(pk=pk, **values)
            to_update.append(obj)
            counts.updated += 1
        else:
            counts.unchanged += 1
            continue
        if has_batch:
            obj.batch = batch
        if has_updated_at:
            obj.updated_at = now

    if write:
        manager = spec.model._default_manager
        manager.bulk_create(to_create, batch_size=BATCH_SIZE)
        if to_update:
            extra = ["batch"] * has_batch + ["updated_at"] * has_updated_at
            manager.bulk_update(to_update, [*fields, *extra], batch_size=BATCH_SIZE)

    for obj in to_create + to_update:
        customer_id = obj.pk if spec.model is Customer else obj.customer_id
        if customer_id is not None:
            counts.customer_ids.add(customer_id)
    return counts


def _sync_users(
    spec: Spec,
    rows: list[dict[str, Any]],
    lookups: Lookups,
    write: bool,
) -> Counts:
    """Create or update one batch of users and their role. Six queries."""
    counts = Counts()
    role_ids = list(lookups.roles.values())
    memberships = User.groups.through
    existing_ids = [
        lookups.users[v["email"]] for v in rows if v["email"] in lookups.users
    ]
    stored = {u.pk: u for u in User.objects.filter(pk__in=existing_ids)}
    roles: dict[int, set[int]] = {pk: set() for pk in stored}
    for user_id, group_id in memberships.objects.filter(
        user_id__in=existing_ids, group_id__in=role_ids
    ).values_list("user_id", "group_id"):
        roles[user_id].add(group_id)

    to_create, to_update, regrouped = [], [], {}
    for values in rows:
        pk = lookups.users.get(values["email"])
        obj = stored.get(pk) if pk is not None else None
        if obj is None:
            obj = User(
                username=values["email"],
                email=values["email"],
                first_name=values["first_name"],
                last_name=values["last_name"],
            )
            # No password until an admin sets one.
            obj.set_unusable_password()
            to_create.append((obj, values["role"]))
            counts.new += 1
            continue

        names_differ = (obj.first_name, obj.last_name) != (
            values["first_name"],
            values["last_name"],
        )
        role_differs = roles[obj.pk] != {values["role"]}
        if not (names_differ or role_differs):
            counts.unchanged += 1
            continue
        counts.updated += 1
        if names_differ:
            obj.first_name = values["first_name"]
            obj.last_name = values["last_name"]
            to_update.append(obj)
        if role_differs:
            regrouped[obj.pk] = values["role"]

    if write:
        User.objects.bulk_create([obj for obj, _ in to_create])
        if to_update:
            User.objects.bulk_update(to_update, ["first_name", "last_name"])
        # Other groups than the three roles are left as they are.
        memberships.objects.filter(
            user_id__in=list(regrouped), group_id__in=role_ids
        ).delete()
        regrouped.update({obj.pk: group_id for obj, group_id in to_create})
        memberships.objects.bulk_create(
            [memberships(user_id=u, group_id=g) for u, g in regrouped.items()]
        )
    return counts


def _batches(
    spec: Spec, path: Path, validation: Validation, lookups: Lookups
) -> Iterator[list[dict[str, Any]]]:
    """Pass two's input: the good rows again, BATCH_SIZE at a time."""
    chunk: list[dict[str, Any]] = []
    with closing(read_rows(path)) as rows:
        next(rows)
        for line, cells in rows:
            if line in validation.bad_lines:
                continue
            values, problems = parse_row(
                spec, validation.positions, line, cells, lookups
            )
            if values is None:
                # The file or the database changed between the two passes.
                raise ImportFailed(
                    f"{path.name} changed during the import", [str(problems[0])]
                )
            chunk.append(values)
            if len(chunk) >= BATCH_SIZE:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


# --- The import --------------------------------------------------------------


@dataclass
class ImportReport:
    kind: str
    file_name: str
    dry_run: bool
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)
    rejects_path: Path | None = None
    batch_id: int | None = None
    rescored: int = 0

    @property
    def summary(self) -> str:
        return (
            f"{self.new} new, {self.updated} updated, "
            f"{self.unchanged} unchanged, {self.skipped} skipped"
        )


def rejects_path_for(path: Path) -> Path:
    return path.with_name(f"{path.stem}.rejects.csv")


def import_file(
    *,
    kind: str,
    path: Path,
    dry_run: bool = False,
    skip_bad_rows: bool = False,
    user_id: int | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Import one file of a canonical kind and return what happened.

    Raises ImportFailed, having written nothing, when the header is wrong or
    a row is bad and ``skip_bad_rows`` is off. Otherwise one transaction
    writes the good rows, records an ImportBatch and asks for one re-score of
    the customers whose inputs changed. A dry run writes and enqueues nothing.

    Costs a few queries to load what rows refer to, then about three per
    BATCH_SIZE rows, plus the re-score.
    """
    spec = SPECS[kind]
    lookups = Lookups(spec.needs)
    writes_rejects = skip_bad_rows and not dry_run
    validation = validate(
        spec, path, lookups, rejects_path_for(path) if writes_rejects else None
    )
    errors = [str(problem) for problem in validation.problems]
    if errors and not skip_bad_rows:
        bad = len(validation.bad_lines)
        raise ImportFailed(
            f"{path.name}: {bad} bad row{'' if bad == 1 else 's'}; "
            "nothing was imported. Fix them, or rerun with --skip-bad-rows "
            "to import the good rows.",
            errors,
        )

    report = ImportReport(
        kind=kind,
        file_name=path.name,
        dry_run=dry_run,
        skipped=len(validation.bad_lines),
        errors=errors,
        rejects_path=validation.rejects_path,
    )
    customer_ids: set[int] = set()
    with transaction.atomic():
        batch = None
        if not dry_run:
            batch = ImportBatch.objects.create(
                kind=kind, file_name=path.name[:255], created_by_id=user_id
            )
            report.batch_id = batch.pk

        done = 0
        for rows in _batches(spec, path, validation, lookups):
            if kind == "users":
                counts = _sync_users(spec, rows, lookups, write=not dry_run)
            else:
                counts = _sync_records(spec, rows, batch, write=not dry_run)
            report.new += counts.new
            report.updated += counts.updated
            report.unchanged += counts.unchanged
            customer_ids |= counts.customer_ids
            done += len(rows)
            if progress:
                progress(done, validation.good)

        if batch is not None:
            batch.rows_new = report.new
            batch.rows_updated = report.updated
            batch.rows_unchanged = report.unchanged
            batch.rows_skipped = report.skipped
            batch.errors = errors
            batch.save(
                update_fields=[
                    "rows_new",
                    "rows_updated",
                    "rows_unchanged",
                    "rows_skipped",
                    "errors",
                ]
            )
            if customer_ids:
                # One job for every customer the import touched; it runs after
                # the commit, so it sees the new rows.
                jobs.request_rescore(sorted(customer_ids))
                report.rescored = len(customer_ids)

    logger.info(
        "Import of %s from %s%s: %s",
        kind,
        path.name,
        " (dry run)" if dry_run else "",
        report.summary,
    )
    return report
