"""Playbook pieces that pages of other apps can show without importing
playbooks code: the dependency stays ``playbooks -> health``."""

from django import template

from playbooks import selectors
from playbooks.forms import CompleteTaskForm

register = template.Library()


@register.inclusion_tag("playbooks/_customer_tasks.html", takes_context=True)
def customer_tasks(context, customer):
    """The open tasks of one customer's playbooks, each with a complete-task
    form when the user may complete it. Two queries."""
    request = context.get("request")
    user = getattr(request, "user", None)
    tasks = list(selectors.customer_open_tasks(customer.pk))
    for task in tasks:
        task.can_complete = user is not None and selectors.may_complete(user, task)
    return {
        "tasks": tasks,
        "customer": customer,
        "request": request,
        "form": CompleteTaskForm(),
        "next": request.get_full_path() if request else "",
        "csrf_token": context.get("csrf_token"),
    }


@register.simple_tag
def open_task_counts(customers) -> dict[int, int]:
    """Open task count per customer id for a page of customers (or of their
    ids); one query."""
    return selectors.open_task_counts([getattr(c, "pk", c) for c in customers])


@register.simple_tag
def overdue_task_counts_by_owner() -> dict[int, int]:
    """Overdue open task count per owner (user id); one query."""
    return selectors.overdue_task_counts_by_owner()


@register.filter
def lookup(mapping, key):
    """``{{ counts|lookup:customer.pk }}``: a dict value, or 0."""
    return (mapping or {}).get(key, 0)
