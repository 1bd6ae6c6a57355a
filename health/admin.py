"""The admin: data, score models and their tuning pages, job runs.

Score models are edited here: components inline on the model, measures
inline on the component. Active and retired models are frozen; clone,
publish, what-if and backtest are pages of a model that call
``health.tuning`` and ``health.backtest``.
"""

from datetime import date
from pathlib import Path

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views.decorators.http import require_POST

from health import (
    backtest,
    import_profiles,
    import_resources,
    importers,
    jobs,
    services,
    tuning,
)
from health.models import (
    Band,
    Component,
    Customer,
    ImportBatch,
    ImportProfile,
    Interaction,
    JobRun,
    Measure,
    Metric,
    MetricReading,
    NpsResponse,
    Opportunity,
    Override,
    Pulse,
    ScoreModel,
    ScoreSnapshot,
    Ticket,
)
from health.scoring import BANDS


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "external_id",
        "segment",
        "arr",
        "owner",
        "customer_since",
        "renewal_date",
        "churned_on",
    ]
    list_filter = ["segment", "churned_on"]
    search_fields = ["name", "external_id", "support_id", "analytics_id"]
    list_select_related = ["owner"]
    autocomplete_fields = ["owner"]


@admin.register(Metric)
class MetricAdmin(admin.ModelAdmin):
    list_display = ["key", "name", "unit", "source"]
    list_filter = ["source"]
    search_fields = ["key", "name"]


class CustomerRecordAdmin(admin.ModelAdmin):
    list_select_related = ["customer"]
    search_fields = ["customer__name", "customer__external_id"]
    raw_id_fields = ["customer"]


@admin.register(MetricReading)
class MetricReadingAdmin(CustomerRecordAdmin):
    list_display = ["customer", "metric", "value", "observed_on", "source", "batch"]
    list_filter = ["metric", "source"]
    date_hierarchy = "observed_on"
    raw_id_fields = ["customer", "batch"]


@admin.register(Ticket)
class TicketAdmin(CustomerRecordAdmin):
    list_display = ["external_id", "customer", "opened_at", "closed_at", "escalated"]
    list_filter = ["escalated", "priority"]
    search_fields = ["external_id", *CustomerRecordAdmin.search_fields]


@admin.register(NpsResponse)
class NpsResponseAdmin(CustomerRecordAdmin):
    list_display = ["customer", "contact", "score", "responded_at"]


@admin.register(Opportunity)
class OpportunityAdmin(CustomerRecordAdmin):
    list_display = [
        "external_id",
        "customer",
        "product",
        "kind",
        "stage",
        "amount",
        "created_on",
        "closed_on",
    ]
    list_filter = ["kind", "stage"]
    search_fields = ["external_id", *CustomerRecordAdmin.search_fields]


@admin.register(Interaction)
class InteractionAdmin(CustomerRecordAdmin):
    list_display = ["customer", "kind", "occurred_at", "sentiment", "csm"]
    list_filter = ["kind", "sentiment"]
    raw_id_fields = ["customer", "csm"]


@admin.register(Pulse)
class PulseAdmin(CustomerRecordAdmin):
    list_display = ["customer", "rating", "entered_at", "csm"]
    raw_id_fields = ["customer", "csm"]


class FrozenWhenPublished:
    """Active and retired models are frozen: to change a score, clone a
    draft."""

    def _frozen(self, obj) -> bool:
        model = obj if isinstance(obj, ScoreModel) else getattr(obj, "model", None)
        return bool(model and model.is_frozen)

    def has_change_permission(self, request, obj=None):
        if obj is not None and self._frozen(obj):
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and self._frozen(obj):
            return False
        return super().has_delete_permission(request, obj)


def _raise_problems(problems: list[str]) -> None:
    if problems:
        raise forms.ValidationError(problems)


class ComponentFormSet(forms.BaseInlineFormSet):
    """Checks the components of a model together: weights, replacements."""

    def add_fields(self, form, index):
        super().add_fields(form, index)
        # A component may only replace another of the same model.
        if "replaces" in form.fields:
            form.fields["replaces"].queryset = (
                Component.objects.filter(model=self.instance)
                if self.instance.pk
                else Component.objects.none()
            )

    def clean(self):
        super().clean()
        if any(self.errors):
            return
        rows = []
        for form in self.forms:
            data = form.cleaned_data
            if not data or data.get("DELETE"):
                continue
            replaces = data.get("replaces")
            rows.append(
                (data["key"], data["weight"], replaces.key if replaces else None)
            )
        _raise_problems(tuning.component_problems(rows))


class ComponentInline(FrozenWhenPublished, admin.TabularInline):
    model = Component
    fk_name = "model"
    formset = ComponentFormSet
    extra = 0
    fields = ["key", "name", "weight", "replaces"]
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        if obj is not None and obj.is_frozen:
            return False
        return super().has_add_permission(request, obj)


class ScoreModelForm(forms.ModelForm):
    class Meta:
        model = ScoreModel
        fields = [
            "name",
            "version",
            "segment",
            "min_coverage",
            "band_unhealthy",
            "band_neutral",
            "band_healthy",
            "band_very_healthy",
            "note",
        ]

    def clean(self):
        data = super().clean()
        limits = [
            data.get(name)
            for name in (
                "band_unhealthy",
                "band_neutral",
                "band_healthy",
                "band_very_healthy",
            )
        ]
        if (
            None not in limits
            and not 0 < limits[0] < limits[1] < limits[2] < limits[3] <= 100
        ):
            raise forms.ValidationError(
                "Band lower limits must rise strictly, above 0 and up to 100."
            )
        coverage = data.get("min_coverage")
        if coverage is not None and not 0 <= coverage <= 1:
            self.add_error("min_coverage", "Minimum coverage lies between 0 and 1.")
        return data


@admin.register(ScoreModel)
class ScoreModelAdmin(FrozenWhenPublished, admin.ModelAdmin):
    form = ScoreModelForm
    list_display = [
        "name",
        "version",
        "status",
        "segment",
        "author",
        "published_at",
        "created_at",
    ]
    list_filter = ["status", "segment"]
    list_select_related = ["author"]
    inlines = [ComponentInline]
    actions = ["clone_to_draft"]
    readonly_fields = ["status", "author", "created_at", "published_at"]
    fields = [
        "name",
        "version",
        "segment",
        "min_coverage",
        "band_unhealthy",
        "band_neutral",
        "band_healthy",
        "band_very_healthy",
        "note",
        "status",
        "author",
        "created_at",
        "published_at",
    ]
    change_form_template = "admin/health/scoremodel/change_form.html"

    def save_model(self, request, obj, form, change):
        if not change:
            obj.author = request.user
        super().save_model(request, obj, form, change)

    @admin.action(description="Clone to a new draft version")
    def clone_to_draft(self, request, queryset):
        if not self.has_add_permission(request):
            raise PermissionDenied
        for model in queryset:
            draft = tuning.clone_model(model=model, author=request.user)
            self.message_user(request, f"Cloned {model.label} to draft {draft.label}.")

    # --- Pages of one model: clone, publish, what-if, backtest ---------------

    def get_urls(self):
        def view(func):
            return self.admin_site.admin_view(func)

        return [
            path(
                "<int:pk>/clone/",
                view(self.clone_view),
                name="health_scoremodel_clone",
            ),
            path(
                "<int:pk>/publish/",
                view(self.publish_view),
                name="health_scoremodel_publish",
            ),
            path(
                "<int:pk>/whatif/",
                view(self.whatif_view),
                name="health_scoremodel_whatif",
            ),
            path(
                "<int:pk>/backtest/",
                view(self.backtest_view),
                name="health_scoremodel_backtest",
            ),
            *super().get_urls(),
        ]

    def _model_or_404(self, request, pk: int, check) -> ScoreModel:
        model = get_object_or_404(ScoreModel, pk=pk)
        if not check(request, model):
            raise PermissionDenied
        return model

    def _context(self, request, model: ScoreModel, title: str, **extra) -> dict:
        return {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": model,
            "score_model": model,
            "title": title,
            **extra,
        }

    @method_decorator(require_POST)
    def clone_view(self, request, pk: int):
        model = self._model_or_404(request, pk, lambda r, m: self.has_add_permission(r))
        draft = tuning.clone_model(model=model, author=request.user)
        self.message_user(request, f"Cloned {model.label} to draft {draft.label}.")
        return redirect("admin:health_scoremodel_change", draft.pk)

    def publish_view(self, request, pk: int):
        model = self._model_or_404(request, pk, self.has_change_permission)
        note = request.POST.get("note", model.note)
        problems = tuning.model_problems(model)

        if request.method == "POST":
            try:
                tuning.publish_model(model=model, author=request.user, note=note)
            except ValidationError as error:
                problems = error.messages
            else:
                self.message_user(
                    request,
                    f"Published {model.label}; today's scores are being redone.",
                    messages.SUCCESS,
                )
                return redirect("admin:health_scoremodel_change", model.pk)

        current = (
            ScoreModel.objects.filter(
                status=ScoreModel.Status.ACTIVE, segment=model.segment
            )
            .exclude(pk=model.pk)
            .first()
        )
        return TemplateResponse(
            request,
            "admin/health/scoremodel/publish.html",
            self._context(
                request,
                model,
                f"Publish {model.label}",
                note=note,
                problems=problems,
                current=current,
            ),
        )

    def whatif_view(self, request, pk: int):
        model = self._model_or_404(request, pk, self.has_view_permission)
        as_of = _date_param(request, "as_of") or jobs.today()
        result = tuning.what_if(model=model, as_of=as_of)
        mix = [
            (band, label, result.current_mix[band], result.draft_mix[band])
            for band, label in Band.choices
        ]
        return TemplateResponse(
            request,
            "admin/health/scoremodel/whatif.html",
            self._context(
                request,
                model,
                f"What if {model.label} scored everyone?",
                result=result,
                mix=mix,
                as_of=as_of,
            ),
        )

    def backtest_view(self, request, pk: int):
        model = self._model_or_404(request, pk, self.has_view_permission)
        horizon = _int_param(request, "horizon") or backtest.DEFAULT_HORIZON_DAYS
        start = _date_param(request, "from")
        end = _date_param(request, "to")
        compare = None
        compare_id = _int_param(request, "compare")
        if compare_id:
            compare = get_object_or_404(ScoreModel, pk=compare_id)

        reports = [
            backtest.run_backtest(
                m, start=start, end=end, horizon_days=horizon, today=jobs.today()
            )
            for m in [model, compare]
            if m is not None
        ]
        return TemplateResponse(
            request,
            "admin/health/scoremodel/backtest.html",
            self._context(
                request,
                model,
                f"Backtest of {model.label}",
                reports=reports,
                rows=backtest_rows(reports),
                charts=[backtest_chart(r) for r in reports],
                horizon=horizon,
                start=start,
                end=end,
                compare=compare,
                models=ScoreModel.objects.exclude(pk=model.pk),
            ),
        )


def _date_param(request, name: str) -> date | None:
    try:
        return date.fromisoformat(request.GET.get(name, ""))
    except ValueError:
        return None


def _int_param(request, name: str) -> int | None:
    raw = request.GET.get(name, "")
    return int(raw) if raw.isdigit() and int(raw) > 0 else None


def backtest_rows(reports: list[dict]) -> list[tuple[str, list]]:
    """The backtest table: one row per band and one for all, each with
    (observations, churn rate in percent or None) per model."""

    def percent(rate: float | None) -> float | None:
        return None if rate is None else 100 * rate

    labels = dict(Band.choices)
    rows = [
        (
            labels[band],
            [
                (r["count_by_band"][band], percent(r["churn_rate_by_band"][band]))
                for r in reports
            ],
        )
        for band in BANDS
    ]
    rows.append(
        ("All", [(r["observations"], percent(r["churn_rate"])) for r in reports])
    )
    return rows


def backtest_chart(report: dict) -> list[dict]:
    """Bars of the churn rate per band, as percentages for an inline SVG."""
    labels = dict(Band.choices)
    bars = []
    for i, band in enumerate(BANDS):
        rate = report["churn_rate_by_band"][band]
        height = round((rate or 0) * 100, 1)
        bars.append(
            {
                "band": band,
                "label": labels[band],
                "x": 10 + i * 70,
                "height": height,
                "y": 110 - height,
                "rate": rate,
                "count": report["count_by_band"][band],
            }
        )
    return bars


class MeasureForm(forms.ModelForm):
    class Meta:
        model = Measure
        fields = ["metric", "weight", "freshness_days", "min_tenure_days", "curve"]

    def clean_weight(self):
        weight = self.cleaned_data.get("weight")
        _raise_problems(tuning.measure_weight_problems(weight))
        return weight

    def clean_curve(self):
        curve = self.cleaned_data.get("curve")
        _raise_problems(tuning.curve_problems(curve))
        return curve


class MeasureInline(admin.TabularInline):
    model = Measure
    form = MeasureForm
    extra = 0
    fields = ["metric", "weight", "freshness_days", "min_tenure_days", "curve"]

    def _frozen(self, obj):
        return obj is not None and obj.model.is_frozen

    def has_add_permission(self, request, obj=None):
        return not self._frozen(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return not self._frozen(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return not self._frozen(obj) and super().has_delete_permission(request, obj)


class ComponentForm(forms.ModelForm):
    """A component edited on its own page is checked against its siblings."""

    class Meta:
        model = Component
        fields = ["model", "key", "name", "weight", "replaces"]

    def clean(self):
        data = super().clean()
        model = data.get("model")
        if model is None or data.get("weight") is None or not data.get("key"):
            return data
        if model.is_frozen:
            raise forms.ValidationError(
                f"{model.label} is {model.status}; clone it to a draft to change it."
            )
        replaces = data.get("replaces")
        if replaces is not None and replaces.model_id != model.pk:
            self.add_error("replaces", "Choose a component of the same model.")
            return data
        siblings = model.components.select_related("replaces")
        if self.instance.pk:
            siblings = siblings.exclude(pk=self.instance.pk)
        rows = [
            (c.key, c.weight, c.replaces.key if c.replaces else None) for c in siblings
        ]
        rows.append((data["key"], data["weight"], replaces.key if replaces else None))
        _raise_problems(tuning.component_problems(rows))
        return data


@admin.register(Component)
class ComponentAdmin(FrozenWhenPublished, admin.ModelAdmin):
    form = ComponentForm
    list_display = ["name", "key", "model", "weight", "replaces"]
    list_filter = ["model"]
    list_select_related = ["model", "replaces"]
    inlines = [MeasureInline]


class WrittenElsewhere(admin.ModelAdmin):
    """Rows that jobs or pages write: shown in the admin, never added or
    edited there."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Override)
class OverrideAdmin(WrittenElsewhere):
    """Overrides are the audit trail: made and ended on the customer page,
    never edited or deleted here."""

    list_display = [
        "customer",
        "band",
        "computed_band",
        "starts_on",
        "expires_on",
        "ended_on",
        "created_by",
    ]
    list_filter = ["band"]
    list_select_related = ["customer", "created_by"]
    search_fields = ["customer__name", "customer__external_id", "reason"]
    readonly_fields = [f.name for f in Override._meta.fields]

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ScoreSnapshot)
class ScoreSnapshotAdmin(WrittenElsewhere):
    list_display = [
        "customer",
        "as_of",
        "score",
        "band",
        "overridden_band",
        "coverage",
        "model",
    ]
    list_filter = ["band", "model", "as_of"]
    list_select_related = ["customer", "model"]
    search_fields = ["customer__name", "customer__external_id"]
    date_hierarchy = "as_of"


@admin.register(JobRun)
class JobRunAdmin(WrittenElsewhere):
    list_display = [
        "pk",
        "kind",
        "status",
        "progress",
        "created_at",
        "finished_at",
    ]
    list_filter = ["kind", "status"]
    readonly_fields = [f.name for f in JobRun._meta.fields]

    def changelist_view(self, request, extra_context=None):
        # A run whose worker died would otherwise look busy forever.
        services.mark_stale_job_runs()
        nightly = services.last_successful_run(JobRun.Kind.NIGHTLY)
        extra_context = {
            **(extra_context or {}),
            "title": "Job runs",
            "subtitle": (
                "Nightly run last succeeded "
                f"{timezone.localtime(nightly.finished_at):%Y-%m-%d %H:%M} UTC"
                if nightly
                else "The nightly run has not succeeded yet"
            ),
        }
        return super().changelist_view(request, extra_context)


class ImportBatchAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "kind",
        "file_name",
        "created_by",
        "rows_new",
        "rows_updated",
        "rows_unchanged",
        "rows_skipped",
    ]
    list_filter = ["kind"]


# --- Imports: profiles, upload with preview, exports, undo ------------------
# The upload page runs the same importer as ``manage.py import_data``: a dry
# run for the preview, then the import itself; exports go through one
# django-import-export resource per kind (health.import_resources).


class ImportProfileForm(forms.ModelForm):
    class Meta:
        model = ImportProfile
        fields = [
            "name",
            "kind",
            "description",
            "columns",
            "constants",
            "value_maps",
            "customer_field",
            "date_order",
            "decimal_comma",
            "thousands_separator",
            "true_words",
            "false_words",
            "missing_values",
            "encoding",
        ]

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        for name, problems in import_profiles.problems(
            kind=cleaned.get("kind", ""),
            columns=cleaned.get("columns"),
            constants=cleaned.get("constants"),
            value_maps=cleaned.get("value_maps"),
            encoding=cleaned.get("encoding", ""),
            decimal_comma=cleaned.get("decimal_comma", False),
            thousands_separator=cleaned.get("thousands_separator", ""),
        ).items():
            for problem in problems:
                self.add_error(name, problem)
        return cleaned


@admin.register(ImportProfile)
class ImportProfileAdmin(admin.ModelAdmin):
    form = ImportProfileForm
    list_display = ["name", "kind", "customer_field", "date_order", "updated_at"]
    list_filter = ["kind"]
    search_fields = ["name", "description"]
    fieldsets = [
        (None, {"fields": ["name", "kind", "description"]}),
        ("Columns", {"fields": ["columns", "constants", "value_maps"]}),
        ("Customers", {"fields": ["customer_field"]}),
        (
            "Cells",
            {
                "fields": [
                    "date_order",
                    "decimal_comma",
                    "thousands_separator",
                    "true_words",
                    "false_words",
                    "missing_values",
                    "encoding",
                ]
            },
        ),
    ]


class ImportUploadForm(forms.Form):
    kind = forms.ChoiceField(label="Kind or profile")
    file = forms.FileField(help_text="CSV (any common encoding) or XLSX.")
    skip_bad_rows = forms.BooleanField(
        required=False,
        help_text="Import the good rows and give back the bad ones to fix.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        profiles = [
            (p.name, f"{p.name} ({p.kind})")
            for p in ImportProfile.objects.only("name", "kind")
        ]
        self.fields["kind"].choices = [
            ("Kinds", [(k, k) for k in importers.KINDS]),
            ("Profiles", profiles),
        ]


class ExportForm(forms.Form):
    kind = forms.ChoiceField(choices=[(k, k) for k in importers.KINDS])
    format = forms.ChoiceField(
        choices=[(f, f.upper()) for f in import_resources.EXPORT_FORMATS]
    )


@admin.register(ImportBatch)
class ImportBatchUploadAdmin(ImportBatchAdmin):
    """Import batches with an upload page (preview, then import), an export
    page, and an action that undoes a batch."""

    change_list_template = "admin/health/importbatch_change_list.html"
    actions = ["undo_batches"]
    readonly_fields = [
        "kind",
        "file_name",
        "created_by",
        "created_at",
        "rows_new",
        "rows_updated",
        "rows_unchanged",
        "rows_skipped",
        "errors",
    ]

    def has_add_permission(self, request):
        # Batches come from imports, never from a blank form.
        return False

    def get_urls(self):
        def view(func):
            return self.admin_site.admin_view(func)

        return [
            path("upload/", view(self.upload_view), name="health_import_upload"),
            path(
                "upload/<str:token>/rejects/",
                view(self.rejects_view),
                name="health_import_rejects",
            ),
            path("export/", view(self.export_view), name="health_import_export"),
            *super().get_urls(),
        ]

    def _uploads(self, request) -> dict:
        return request.session.setdefault("health_imports", {})

    def upload_view(self, request):
        """GET: the form. POST with a file: a dry run, shown as a preview
        with a button to import. POST with a token: the import itself."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Import a file",
        }
        if request.method == "POST" and "token" in request.POST:
            return self._import_upload(request, request.POST["token"])

        form = ImportUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            context.update(self._preview_upload(request, form))
        context["form"] = form
        return TemplateResponse(request, "admin/health/import_upload.html", context)

    def _preview_upload(self, request, form) -> dict:
        upload = form.cleaned_data["file"]
        try:
            saved = import_resources.save_upload(upload)
        except ValueError as exc:
            return {"failure": str(exc)}
        kind, mapping, profile = import_profiles.resolve(form.cleaned_data["kind"])
        skip = form.cleaned_data["skip_bad_rows"]
        try:
            report = importers.import_file(
                kind=kind,
                path=saved,
                dry_run=True,
                skip_bad_rows=skip,
                mapping=mapping,
                profile=profile,
                file_name=upload.name,
            )
        except importers.ImportFailed as exc:
            import_resources.discard_upload(saved)
            return {"failure": exc.message, "errors": exc.errors}

        token = saved.parent.name
        self._uploads(request)[token] = {
            "path": str(saved),
            "name": upload.name,
            "kind": form.cleaned_data["kind"],
            "skip": skip,
        }
        request.session.modified = True
        return {"report": report, "token": token}

    def _import_upload(self, request, token: str):
        upload = self._uploads(request).pop(token, None)
        request.session.modified = True
        if upload is None or not Path(upload["path"]).is_file():
            messages.error(request, "That upload has expired; upload the file again.")
            return redirect("admin:health_import_upload")

        saved = Path(upload["path"])
        kind, mapping, profile = import_profiles.resolve(upload["kind"])
        try:
            report = importers.import_file(
                kind=kind,
                path=saved,
                skip_bad_rows=upload["skip"],
                user_id=request.user.pk,
                mapping=mapping,
                profile=profile,
                file_name=upload["name"],
            )
        except importers.ImportFailed as exc:
            import_resources.discard_upload(saved)
            messages.error(request, f"Nothing was imported: {exc.message}")
            return redirect("admin:health_import_upload")

        saved.unlink()
        if report.rejects_path:
            request.session.setdefault("health_rejects", {})[token] = str(
                report.rejects_path
            )
            request.session.modified = True
            messages.warning(
                request,
                f"{report.skipped} bad rows were skipped; download them from "
                f"{reverse_rejects(token)} to fix and import again.",
            )
        else:
            import_resources.discard_upload(saved)
        messages.success(
            request,
            f"Imported {upload['name']}: {report.summary}."
            + (f" Re-scoring {report.rescored} customers." if report.rescored else ""),
        )
        return redirect("admin:health_importbatch_change", report.batch_id)

    def rejects_view(self, request, token: str):
        rejects = request.session.get("health_rejects", {}).get(token)
        if not rejects or not Path(rejects).is_file():
            raise Http404("No rejected rows for that import.")
        response = HttpResponse(
            Path(rejects).read_bytes(), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = 'attachment; filename="rejects.csv"'
        return response

    def export_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = ExportForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            kind, format = form.cleaned_data["kind"], form.cleaned_data["format"]
            response = HttpResponse(
                import_resources.export_bytes(kind, format),
                content_type=import_resources.EXPORT_FORMATS[format],
            )
            stamp = timezone.localdate().isoformat()
            response["Content-Disposition"] = (
                f'attachment; filename="{kind}-{stamp}.{format}"'
            )
            return response
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Export records",
            "form": form,
        }
        return TemplateResponse(request, "admin/health/import_export.html", context)

    @admin.action(description="Undo the selected imports (delete what they created)")
    def undo_batches(self, request, queryset):
        for batch in list(queryset):
            try:
                report = importers.undo_batch(batch_id=batch.pk)
            except importers.UndoRefused as exc:
                messages.error(request, f"{batch}: {exc}")
                continue
            messages.success(
                request,
                f"Undid {batch}: deleted {report.summary}; rows it had updated "
                "keep their new values.",
            )


def reverse_rejects(token: str) -> str:
    return reverse("admin:health_import_rejects", args=[token])
