"""Listeners to ``health`` signals; each only calls a service."""

from __future__ import annotations

from datetime import date

from playbooks import services


def on_band_changed(
    sender,
    *,
    customer_id: int,
    snapshot_id: int | None,
    as_of: date,
    old_band: str | None,
    new_band: str,
    **kwargs,
) -> None:
    services.handle_band_change(
        customer_id=customer_id,
        snapshot_id=snapshot_id,
        as_of=as_of,
        old_band=old_band,
        new_band=new_band,
    )


def on_scores_written(sender, *, customer_ids: list[int], as_of: date, **kwargs) -> int:
    return services.assign_held_playbooks(as_of=as_of, customer_ids=customer_ids)


def on_demo_built(sender, *, as_of: date, prefix: str, **kwargs) -> int:
    return services.seed_demo_assignments(as_of=as_of, prefix=prefix)
