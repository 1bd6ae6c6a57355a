from django.contrib import admin

from playbooks.models import Assignment, Playbook, Step, Task


class StepInline(admin.TabularInline):
    model = Step
    extra = 1
    fields = ["position", "title", "guidance", "due_in_days", "interaction_kind"]


@admin.register(Playbook)
class PlaybookAdmin(admin.ModelAdmin):
    list_display = ["name", "band", "required_days", "is_active"]
    list_filter = ["band", "is_active"]
    search_fields = ["name", "purpose"]
    inlines = [StepInline]


class TaskInline(admin.TabularInline):
    model = Task
    extra = 0
    fields = ["position", "title", "due_on", "done_at", "done_by", "note"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    """Read-mostly: assigning, reassigning and cancelling happen on the
    board, through the services, so that tasks follow."""

    list_display = [
        "playbook",
        "customer",
        "owner",
        "status",
        "band",
        "opened_on",
        "due_on",
        "outcome",
    ]
    list_filter = ["status", "playbook", "outcome"]
    search_fields = ["customer__name", "customer__external_id"]
    list_select_related = ["playbook", "customer", "owner"]
    readonly_fields = [
        "playbook",
        "customer",
        "owner",
        "assigned_by",
        "status",
        "band",
        "opened_on",
        "due_on",
        "closed_at",
        "trigger_snapshot",
        "outcome",
        "reason",
    ]
    inlines = [TaskInline]

    def has_add_permission(self, request) -> bool:
        return False
