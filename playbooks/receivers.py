"""Listeners to ``health`` signals; each only calls a service."""

from __future__ import annotations

from datetime import date

from playbooks import services


def on_bands_changed(
    sender,
    *,
    changes: list[tuple[int, int | None, str | None, str]],
    as_of: date,
    **kwargs,
) -> None:
    services.handle_band_changes(as_of=as_of, changes=changes)


def on_scores_written(sender, *, customer_ids: list[int], as_of: date, **kwargs) -> int:
    return services.assign_held_playbooks(as_of=as_of, customer_ids=customer_ids)


def on_demo_built(sender, *, as_of: date, prefix: str, **kwargs) -> int:
    return services.seed_demo_assignments(as_of=as_of, prefix=prefix)
