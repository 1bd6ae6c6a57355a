"""Pages of the playbooks: my tasks for everyone, the board, assignment and
effectiveness for managers. Changes are POST only; nothing changes on GET."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import (
    require_http_methods,
    require_POST,
    require_safe,
)

from health.models import Band
from playbooks import selectors, services
from playbooks.forms import (
    AssignForm,
    BulkAssignForm,
    CancelForm,
    CompleteTaskForm,
    ReassignForm,
    workbench_users,
)
from playbooks.models import Assignment, Task
from workbench.access import id_param, role_required
from workbench.roles import is_manager

# --- Access -----------------------------------------------------------------------


def require_manager(request) -> None:
    if not is_manager(request.user):
        raise PermissionDenied("Only CS managers and admins may do this.")


def visible_to(user) -> Q:
    """Work a user may see: their own, or their customers'. Managers see
    everything."""
    if is_manager(user):
        return Q()
    return Q(owner=user) | Q(customer__owner=user)


def get_assignment(request, pk: int, *, manage: bool = False) -> Assignment:
    """The assignment if the user may see it (or, with ``manage``, change
    it, which only open ones allow): else 403 for a role that may not
    manage, 404 for one that may not see it."""
    assignments = Assignment.objects.select_related("customer", "playbook", "owner")
    if manage:
        require_manager(request)
        assignments = assignments.filter(status=Assignment.Status.OPEN)
    return get_object_or_404(assignments.filter(visible_to(request.user)), pk=pk)


def get_task_to_complete(request, pk: int) -> Task:
    """An open task the user may complete: theirs, their customer's, or any
    for a manager; else 404, so nobody learns about others' tasks."""
    return get_object_or_404(selectors.completable_tasks(request.user), pk=pk)


def safe_next(request, default: str) -> str:
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default


# --- CSM pages ---------------------------------------------------------------------


@require_safe
@role_required
def my_tasks(request):
    """The user's open tasks, overdue first."""
    return render(
        request,
        "playbooks/my_tasks.html",
        {
            "tasks": selectors.tasks_of(request.user),
            "can_manage": is_manager(request.user),
        },
    )


@require_POST
@role_required
def task_complete(request, pk: int):
    task = get_task_to_complete(request, pk)
    form = CompleteTaskForm(request.POST)
    if not form.is_valid():
        messages.error(request, "The task was not completed: check the form.")
        return redirect(safe_next(request, "playbooks:my-tasks"))

    try:
        services.complete_task(
            task=task,
            user=request.user,
            note=form.cleaned_data["note"],
            sentiment=form.cleaned_data["sentiment"],
        )
    except ValueError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Done: {task.title}")
    return redirect(safe_next(request, "playbooks:my-tasks"))


@require_safe
@role_required
def assignment_detail(request, pk: int):
    assignment = get_assignment(request, pk)
    return render(
        request,
        "playbooks/assignment.html",
        {
            "assignment": assignment,
            "tasks": selectors.with_overdue(assignment.tasks.select_related("done_by")),
            "can_manage": is_manager(request.user),
            "reassign_form": ReassignForm(initial={"owner": assignment.owner_id}),
            "cancel_form": CancelForm(),
            "complete_form": CompleteTaskForm(),
        },
    )


# --- Manager pages -----------------------------------------------------------------


@require_safe
@role_required
def board(request):
    """Assignments by status, owner and overdue; open ones by default.
    Managers see everyone's, a CSM their own and their customers'."""
    status = request.GET.get("status", Assignment.Status.OPEN)
    if status not in Assignment.Status.values:
        status = ""
    owner = request.GET.get("owner", "")
    owner_id = id_param(owner)
    overdue = request.GET.get("overdue") == "1"

    assignments = selectors.board(
        status=status, owner_id=owner_id, overdue=overdue
    ).filter(visible_to(request.user))
    page = Paginator(assignments, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "playbooks/board.html",
        {
            "page": page,
            "statuses": Assignment.Status.choices,
            "status": status,
            "owners": workbench_users(),
            "owner_id": owner_id,
            "overdue": overdue,
            "overdue_by_owner": selectors.overdue_task_counts_by_owner(),
            "can_manage": is_manager(request.user),
        },
    )


@require_http_methods(["GET", "POST"])
@role_required
def assign(request):
    """GET: the forms to assign one customer or many; POST: assign one."""
    require_manager(request)

    form = AssignForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        assignment = services.assign_playbook(
            playbook=data["playbook"],
            customer=data["customer"],
            owner=data["owner"],
            assigned_by=request.user,
        )
        if assignment is None:
            messages.warning(
                request,
                f"{data['customer']} already has {data['playbook']} open.",
            )
            return redirect("playbooks:assign")
        messages.success(request, f"Assigned {assignment}.")
        return redirect("playbooks:assignment", pk=assignment.pk)

    return render(
        request,
        "playbooks/assign.html",
        {"form": form, "bulk_form": BulkAssignForm()},
        status=400 if form.is_bound else 200,
    )


@require_POST
@role_required
def assign_bulk(request):
    """Assign a playbook to every current customer matching the filters."""
    require_manager(request)

    bulk_form = BulkAssignForm(request.POST)
    if not bulk_form.is_valid():
        return render(
            request,
            "playbooks/assign.html",
            {"form": AssignForm(), "bulk_form": bulk_form},
            status=400,
        )

    data = bulk_form.cleaned_data
    customers = selectors.customers_matching(
        band=data["band"],
        segment=data["segment"].strip(),
        owner_id=data["owner"].pk if data["owner"] else None,
    )
    assigned, skipped = services.assign_playbook_bulk(
        playbook=data["playbook"], customers=customers, assigned_by=request.user
    )
    messages.success(
        request,
        f"{data['playbook']}: assigned to {assigned} customers; "
        f"{skipped} already had it open.",
    )
    return redirect("playbooks:board")


@require_POST
@role_required
def assignment_reassign(request, pk: int):
    assignment = get_assignment(request, pk, manage=True)
    form = ReassignForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose who takes the assignment over.")
        return redirect("playbooks:assignment", pk=pk)

    services.reassign_assignment(
        assignment=assignment, owner=form.cleaned_data["owner"], by=request.user
    )
    messages.success(request, "Reassigned.")
    return redirect("playbooks:assignment", pk=pk)


@require_POST
@role_required
def assignment_cancel(request, pk: int):
    assignment = get_assignment(request, pk, manage=True)
    form = CancelForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Cancelling needs a reason.")
        return redirect("playbooks:assignment", pk=pk)

    services.cancel_assignment(
        assignment=assignment, reason=form.cleaned_data["reason"], by=request.user
    )
    messages.success(request, "Cancelled.")
    return redirect("playbooks:assignment", pk=pk)


@require_safe
@role_required
def effectiveness(request):
    require_manager(request)
    return render(
        request,
        "playbooks/effectiveness.html",
        {"rows": selectors.effectiveness(), "bands": dict(Band.choices)},
    )
