"""Signals ``health`` sends; other apps listen, ``health`` imports none of them.

All are sent after the transaction that wrote the scores commits.

``band_changed``: once per customer whose band at its newest scored date
differs from its band before. Keyword arguments: ``customer_id``,
``snapshot_id``, ``as_of``, ``old_band`` (None for a first snapshot) and
``new_band``. Backfilling past dates sends nothing for them: only a
customer's newest date counts, and a rerun of a day that lands in the same
band sends nothing.

``bands_changed``: once per batch that ``band_changed`` went out for, after
those and before ``scores_written``, for listeners that handle the changes
as a set. Keyword arguments: ``changes``, a list of ``(customer_id,
snapshot_id, old_band, new_band)`` tuples, and ``as_of``.

``scores_written``: after each batch of snapshots at the customers' newest
date, whether or not a band changed, so that listeners can act on bands that
have held for some days. Keyword arguments: ``customer_ids`` and ``as_of``.

``demo_built``: after ``build_demo`` has built and scored the demo book, so
other apps can give it their own demo state. Keyword arguments: ``as_of`` and
``prefix`` (the demo customers' external id prefix). Receivers return a count
of what they made, which the command prints.
"""

from django.dispatch import Signal

band_changed = Signal()
bands_changed = Signal()
scores_written = Signal()
demo_built = Signal()
