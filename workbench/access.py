"""Access checks shared by every view: one place that says who may look."""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied

from workbench.roles import ROLES, has_role


def role_required(view):
    """Logged in and holding one of the three roles; else 403."""

    @login_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not has_role(request.user, *ROLES):
            raise PermissionDenied("You have no role in the workbench.")
        return view(request, *args, **kwargs)

    return wrapper
