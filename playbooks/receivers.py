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
