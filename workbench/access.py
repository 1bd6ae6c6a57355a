"""Access checks shared by every view: one place that says who may look and
who may change what.

- Every page needs a login and one of the three roles; without a role: 403.
- Everyone with a role may read every customer.
- A CSM may work on (log interactions and pulses, complete tasks) the
  customers they own; a manager or an admin on any customer.
- Only managers and admins open the dashboard and reassign owners.
"""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404

from health.models import Customer
from workbench.roles import CSM, ROLES, has_role, is_manager


def id_param(value: str | None) -> int | None:
    """A database id from a query string, or None for anything else (words,
    other digits such as "²", numbers too large for a key)."""
    if value and value.isascii() and value.isdigit() and len(value) <= 18:
        return int(value)
    return None


def role_required(view):
    """Logged in and holding one of the three roles; else 403."""

    @login_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not has_role(request.user, *ROLES):
            raise PermissionDenied("You have no role in the workbench.")
        return view(request, *args, **kwargs)

    return wrapper


def manager_required(view):
    """Logged in as a CS manager or an admin; else 403."""

    @role_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not is_manager(request.user):
            raise PermissionDenied("Only CS managers may open this page.")
        return view(request, *args, **kwargs)

    return wrapper


def may_work_on(user, customer: Customer) -> bool:
    """Whether the user may log activity and complete tasks on the customer."""
    if is_manager(user):
        return True
    return has_role(user, CSM) and customer.owner_id == user.pk


def customer_for(request, pk: int, *, action: str = "read") -> Customer:
    """The customer the request names, when the user may do ``action`` on it:
    ``read``, ``work`` (log activity) or ``reassign``. Raises Http404 for an
    unknown customer and PermissionDenied for a refused action.

    Views are wrapped in ``role_required`` first, so a user without a role
    learns nothing, not even whether the customer exists.
    """
    customer = get_object_or_404(Customer.objects.select_related("owner"), pk=pk)

    if action == "read":
        return customer
    if action == "work" and may_work_on(request.user, customer):
        return customer
    if action == "reassign" and is_manager(request.user):
        return customer
    raise PermissionDenied(f"You may not {action} this customer.")
