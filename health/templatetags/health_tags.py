from django import template

from health.models import Band
from workbench.roles import ADMIN, has_role, is_manager

register = template.Library()

_LABELS = dict(Band.choices)


@register.filter
def band_label(key: str | None) -> str:
    return _LABELS.get(key or "", "") or _LABELS["unscored"]


@register.inclusion_tag("health/_band.html")
def band_badge(key: str | None, overridden: str | None = None):
    """The band as a coloured badge; a customer never scored is unscored.
    With ``overridden`` (a person's override in effect) the badge shows that
    band, marked as overridden, and names the computed one beside it."""
    key = key or "unscored"
    if not overridden:
        return {"key": key, "label": _LABELS.get(key, key)}
    return {
        "key": overridden,
        "label": _LABELS.get(overridden, overridden),
        "computed": _LABELS.get(key, key),
    }


@register.filter
def signed(value: float | None) -> str:
    """A change with its sign and one decimal (+3.2, -10.0); a dash for
    none."""
    if value is None or value == "":
        return "—"
    value = round(value, 1) + 0.0  # + 0.0 turns -0.0 into 0.0
    return f"{value:+.1f}" if value else "0.0"


@register.filter
def percent(value: float | None) -> str:
    if value is None or value == "":  # "" is a missing template variable
        return "—"
    return f"{100 * value:.0f}%"


@register.simple_tag(takes_context=True)
def query_with(context, **changes) -> str:
    """The current query string with some parameters changed (an empty value
    drops one); the page number resets unless it is among the changes."""
    params = context["request"].GET.copy()
    if "page" not in changes:
        params.pop("page", None)
    for key, value in changes.items():
        if value in ("", None):
            params.pop(key, None)
        else:
            params[key] = value
    encoded = params.urlencode()
    return f"?{encoded}" if encoded else "?"


@register.filter(name="is_manager")
def is_manager_filter(user) -> bool:
    """Whether the user sees the managers' pages (CS manager or Admin)."""
    return is_manager(user)


@register.filter
def is_admin(user) -> bool:
    """Whether the Django admin would let the user in."""
    return bool(user.is_staff and has_role(user, ADMIN))
