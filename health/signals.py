"""Signals ``health`` sends; other apps listen, ``health`` imports none of them.

``band_changed`` is sent once per customer whose band at the newest scored date
differs from its band at the snapshot before, after the snapshots are
committed. Keyword arguments: ``customer_id``, ``snapshot_id``, ``as_of``,
``old_band`` (None for a first snapshot) and ``new_band``. Backfilling past
dates sends nothing for them: only the newest date of a customer counts.
"""

from django.dispatch import Signal

band_changed = Signal()
