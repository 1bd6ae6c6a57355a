from django import template

from health.models import Band

register = template.Library()

_LABELS = dict(Band.choices)


@register.filter
def band_label(key: str | None) -> str:
    return _LABELS.get(key or "", "")
