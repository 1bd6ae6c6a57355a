from django.contrib import admin
from django.utils import timezone

from health import services
from health.models import (
    Component,
    Customer,
    ImportBatch,
    Interaction,
    JobRun,
    Measure,
    Metric,
    MetricReading,
    NpsResponse,
    Opportunity,
    Pulse,
    ScoreModel,
    ScoreSnapshot,
    Ticket,
)


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


class ComponentInline(FrozenWhenPublished, admin.TabularInline):
    model = Component
    fk_name = "model"
    extra = 0
    fields = ["key", "name", "weight", "replaces"]
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        if obj is not None and obj.is_frozen:
            return False
        return super().has_add_permission(request, obj)


@admin.register(ScoreModel)
class ScoreModelAdmin(FrozenWhenPublished, admin.ModelAdmin):
    list_display = ["name", "version", "status", "segment", "created_at"]
    list_filter = ["status", "segment"]
    inlines = [ComponentInline]


class MeasureInline(admin.TabularInline):
    model = Measure
    extra = 0
    fields = ["metric", "weight", "freshness_days", "curve"]

    def _frozen(self, obj):
        return obj is not None and obj.model.is_frozen

    def has_add_permission(self, request, obj=None):
        return not self._frozen(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return not self._frozen(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return not self._frozen(obj) and super().has_delete_permission(request, obj)


@admin.register(Component)
class ComponentAdmin(FrozenWhenPublished, admin.ModelAdmin):
    list_display = ["name", "key", "model", "weight", "replaces"]
    list_filter = ["model"]
    inlines = [MeasureInline]


@admin.register(ScoreSnapshot)
class ScoreSnapshotAdmin(admin.ModelAdmin):
    list_display = ["customer", "as_of", "score", "band", "coverage", "model"]
    list_filter = ["band", "model", "as_of"]
    list_select_related = ["customer", "model"]
    search_fields = ["customer__name", "customer__external_id"]
    date_hierarchy = "as_of"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(JobRun)
class JobRunAdmin(admin.ModelAdmin):
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

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

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


@admin.register(ImportBatch)
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
