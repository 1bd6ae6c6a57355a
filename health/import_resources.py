"""What the admin's import and export pages stand on.

Exports: one django-import-export ``Resource`` per canonical kind, whose
columns are the kind's columns (customers by CRM id, users by email, metrics
by key), so an exported file imports again unchanged. Imports do not go
through django-import-export's own import: the admin's upload page runs
``importers.import_file`` (a dry run for the preview, then the real import),
the same code the command runs.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import tablib
from import_export import fields, resources
from import_export.widgets import Widget

from health import exports, importers
from workbench.roles import ROLES

EXPORT_FORMATS = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
UPLOAD_SUFFIXES = {".csv", ".txt", ".tsv", ".xlsx", ".xlsm"}
NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")

# Where a record's foreign key is named in a file.
REFERENCES = {
    "customer_id": "customer__external_id",
    "owner_id": "owner__email",
    "csm_id": "csm__email",
    "metric_id": "metric__key",
}


class IsoWidget(Widget):
    """Dates and date-times in ISO form, which every importer reads back."""

    def render(self, value: Any, obj: Any = None, **kwargs: Any) -> str:
        if value is None:
            return ""
        if hasattr(value, "isoformat"):
            return value.isoformat()
        return str(value)


def resource_for(kind: str) -> resources.Resource:
    """A Resource exporting every record of a kind in its canonical columns."""
    spec = importers.SPECS[kind]
    declared: dict[str, Any] = {}
    for column in spec.columns:
        attribute = REFERENCES.get(column.field, column.field)
        if kind == "users" and column.name == "role":
            declared["role"] = fields.Field(
                column_name="role", dehydrate_method="role_of"
            )
            continue
        declared[column.name] = fields.Field(
            attribute=attribute, column_name=column.name, widget=IsoWidget()
        )

    def dehydrate_role(self: resources.Resource, user: Any) -> str:
        names = [g.name for g in user.groups.all() if g.name in ROLES]
        return names[0] if names else ""

    declared["role_of"] = dehydrate_role
    resource_class = type(f"{kind.title()}Resource", (resources.Resource,), declared)
    return resource_class()


def export_queryset(kind: str):
    spec = importers.SPECS[kind]
    queryset = spec.model._default_manager.order_by("pk")
    if kind == "users":
        return queryset.filter(groups__name__in=ROLES).prefetch_related("groups")
    related = [
        name.split("__")[0]
        for field, name in REFERENCES.items()
        if any(c.field == field for c in spec.columns)
    ]
    return queryset.select_related(*related)


def _neutralised(value: Any) -> Any:
    # A cell a spreadsheet would run as a formula gets an apostrophe; a
    # negative number is left alone, or it would not import again.
    if isinstance(value, str) and not NUMBER.fullmatch(value):
        return exports.neutralise(value)
    return value


def export_dataset(kind: str) -> tablib.Dataset:
    """Every record of a kind as a dataset in the kind's columns, formula
    cells neutralised. Holds the whole export in memory.

    TODO: stream very large exports (millions of readings) instead of
    building one dataset, if admins export them from the admin at all.
    """
    dataset = resource_for(kind).export(queryset=export_queryset(kind))
    clean = tablib.Dataset(headers=dataset.headers)
    for row in dataset:
        clean.append([_neutralised(cell) for cell in row])
    return clean


def export_bytes(kind: str, format: str) -> bytes:
    dataset = export_dataset(kind)
    if format == "csv":
        return dataset.export("csv").encode("utf-8")
    return dataset.export("xlsx")


# --- Uploads ---------------------------------------------------------------------


def save_upload(upload: Any) -> Path:
    """The uploaded file in a fresh private temporary folder, under a name
    of ours with the upload's suffix (which says CSV or XLSX)."""
    suffix = Path(upload.name).suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        raise ValueError(
            f"{upload.name}: not a CSV or XLSX file "
            f"({', '.join(sorted(UPLOAD_SUFFIXES))})"
        )
    folder = Path(tempfile.mkdtemp(prefix="workbench-import-"))
    path = folder / f"upload{suffix}"
    with path.open("wb") as handle:
        for chunk in upload.chunks():
            handle.write(chunk)
    return path


def discard_upload(path: Path) -> None:
    if path.parent.name.startswith("workbench-import-"):
        shutil.rmtree(path.parent, ignore_errors=True)
