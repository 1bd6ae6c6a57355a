"""Playbook pieces that pages of other apps can show without importing
playbooks code: the dependency stays ``playbooks -> health``."""

from django import template

register = template.Library()


@register.inclusion_tag("playbooks/_customer_tasks.html", takes_context=True)
def customer_tasks(context, customer):
    """The open tasks of one customer's playbooks."""
    # TODO: read the customer's open tasks (arrives with the playbooks models)
    return {"tasks": [], "customer": customer, "request": context.get("request")}


@register.simple_tag
def open_task_counts(customers) -> dict[int, int]:
    """Open task count per customer id for a page of customers; one query."""
    # TODO: count open tasks (arrives with the playbooks models)
    return {}


@register.simple_tag
def overdue_task_counts_by_owner() -> dict[int, int]:
    """Overdue open task count per owner (user id); one query."""
    # TODO: count overdue tasks (arrives with the playbooks models)
    return {}


@register.filter
def lookup(mapping, key):
    """``{{ counts|lookup:customer.pk }}``: a dict value, or 0."""
    return (mapping or {}).get(key, 0)
