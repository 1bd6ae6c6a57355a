"""Customers, the inputs of their health score, the score models and the
snapshots the scoring jobs write."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q


class Band(models.TextChoices):
    VERY_UNHEALTHY = "very_unhealthy", "Very unhealthy"
    UNHEALTHY = "unhealthy", "Unhealthy"
    NEUTRAL = "neutral", "Neutral"
    HEALTHY = "healthy", "Healthy"
    VERY_HEALTHY = "very_healthy", "Very healthy"
    UNSCORED = "unscored", "Unscored"


class Customer(models.Model):
    name = models.CharField(max_length=200)
    external_id = models.CharField(
        "CRM account id", max_length=64, unique=True, help_text="The CRM account id."
    )
    support_id = models.CharField(
        "support desk id", max_length=64, blank=True, default="", db_index=True
    )
    analytics_id = models.CharField(
        "product analytics id", max_length=64, blank=True, default="", db_index=True
    )
    segment = models.CharField(max_length=64, blank=True, default="", db_index=True)
    arr = models.DecimalField("ARR", max_digits=14, decimal_places=2, default=0)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="customers",
    )
    customer_since = models.DateField(null=True, blank=True)
    renewal_date = models.DateField(null=True, blank=True)
    churned_on = models.DateField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # The customer's newest official snapshot, copied here so that lists
    # filter and sort a whole book on its own columns; ``delta_30d`` follows
    # DESIGN.md rule 9 with D the snapshot's date. Written only by
    # ``services.refresh_current_scores``.
    current_score = models.FloatField(null=True, blank=True, editable=False)
    # Null until the first score, like the other current fields.
    current_band = models.CharField(  # noqa: DJ001
        max_length=16, choices=Band.choices, null=True, blank=True, editable=False
    )
    current_coverage = models.FloatField(null=True, blank=True, editable=False)
    scored_on = models.DateField(null=True, blank=True, editable=False)
    score_30d_ago = models.FloatField(null=True, blank=True, editable=False)
    delta_30d = models.FloatField(null=True, blank=True, editable=False)

    CURRENT_SCORE_FIELDS = (
        "current_score",
        "current_band",
        "current_coverage",
        "scored_on",
        "score_30d_ago",
        "delta_30d",
    )

    class Meta:
        ordering = ["name"]
        # No index on the current-score fields: every score run rewrites
        # them, and without an index on them PostgreSQL updates a row in
        # place (a HOT update) instead of adding to every index of the
        # table; a list sorts the whole book in tens of milliseconds anyway.
        indexes = [models.Index(fields=["name"])]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        # A customer loaded before a re-score and saved after it must not
        # write back the score it was loaded with.
        if not self._state.adding and kwargs.get("update_fields") is None:
            kwargs["update_fields"] = [
                f.name
                for f in self._meta.concrete_fields
                if not f.primary_key and f.name not in self.CURRENT_SCORE_FIELDS
            ]
        super().save(*args, **kwargs)

    def clean(self) -> None:
        # The rules the importer applies to a customers file, so that the
        # admin form cannot store what an import would refuse.
        errors = {}
        if self.arr is not None and self.arr < 0:
            errors["arr"] = "ARR cannot be negative."
        if self.customer_since:
            for name in ("renewal_date", "churned_on"):
                day = getattr(self, name)
                if day and day < self.customer_since:
                    errors[name] = f"{day} is before customer_since."
        if errors:
            raise ValidationError(errors)


class Metric(models.Model):
    class Source(models.TextChoices):
        IMPORTED = "imported", "Imported (arrives as readings)"
        DERIVED = "derived", "Derived (computed from activity records)"

    key = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=120)
    unit = models.CharField(max_length=32, blank=True, default="")
    source = models.CharField(max_length=16, choices=Source.choices)
    description = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return self.key


class ImportBatch(models.Model):
    """One import of one file: who, when, what, and how it went."""

    kind = models.CharField(max_length=32)
    file_name = models.CharField(max_length=255, blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    rows_new = models.PositiveIntegerField(default=0)
    rows_updated = models.PositiveIntegerField(default=0)
    rows_unchanged = models.PositiveIntegerField(default=0)
    rows_skipped = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "import batches"

    def __str__(self) -> str:
        return f"{self.kind} {self.file_name} ({self.created_at:%Y-%m-%d %H:%M})"


class MetricReading(models.Model):
    class Source(models.TextChoices):
        IMPORT = "import", "Import"
        MANUAL = "manual", "Manual"

    # The unique (customer, metric, observed_on) index serves every look-up
    # by customer; a second index on the customer alone only slowed imports.
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="readings", db_index=False
    )
    metric = models.ForeignKey(Metric, on_delete=models.PROTECT)
    value = models.FloatField()
    observed_on = models.DateField()
    source = models.CharField(
        max_length=16, choices=Source.choices, default=Source.IMPORT
    )
    batch = models.ForeignKey(
        ImportBatch, null=True, blank=True, on_delete=models.SET_NULL
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "metric", "observed_on"],
                name="reading_unique_per_day",
            )
        ]

    def __str__(self) -> str:
        return f"{self.metric_id}={self.value} on {self.observed_on}"


class Ticket(models.Model):
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="tickets"
    )
    external_id = models.CharField(max_length=64, unique=True)
    opened_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    priority = models.CharField(max_length=32, blank=True, default="")
    escalated = models.BooleanField(default=False)
    satisfaction = models.FloatField(null=True, blank=True)
    batch = models.ForeignKey(
        ImportBatch, null=True, blank=True, on_delete=models.SET_NULL
    )

    class Meta:
        indexes = [
            models.Index(fields=["customer", "opened_at"]),
            models.Index(fields=["customer", "closed_at"]),
        ]

    def __str__(self) -> str:
        return self.external_id


class NpsResponse(models.Model):
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="nps_responses"
    )
    contact = models.CharField(max_length=254)
    score = models.PositiveSmallIntegerField()
    comment = models.TextField(blank=True, default="")
    responded_at = models.DateTimeField()
    batch = models.ForeignKey(
        ImportBatch, null=True, blank=True, on_delete=models.SET_NULL
    )

    class Meta:
        verbose_name = "NPS response"
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "contact", "responded_at"],
                name="nps_unique_response",
            ),
            models.CheckConstraint(
                condition=Q(score__gte=0, score__lte=10), name="nps_score_0_10"
            ),
        ]
        indexes = [models.Index(fields=["customer", "responded_at"])]

    def __str__(self) -> str:
        return f"{self.contact}: {self.score}"


class Opportunity(models.Model):
    class Kind(models.TextChoices):
        NEW = "new", "New"
        RENEWAL = "renewal", "Renewal"
        UPSELL = "upsell", "Upsell"
        CROSS_SELL = "cross_sell", "Cross-sell"

    class Stage(models.TextChoices):
        OPEN = "open", "Open"
        WON = "won", "Won"
        LOST = "lost", "Lost"

    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="opportunities"
    )
    external_id = models.CharField(max_length=64, unique=True)
    product = models.CharField(max_length=120, blank=True, default="")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    stage = models.CharField(max_length=8, choices=Stage.choices)
    amount = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    created_on = models.DateField()
    closed_on = models.DateField(null=True, blank=True)
    batch = models.ForeignKey(
        ImportBatch, null=True, blank=True, on_delete=models.SET_NULL
    )

    class Meta:
        verbose_name_plural = "opportunities"
        indexes = [models.Index(fields=["customer", "created_on"])]

    def __str__(self) -> str:
        return self.external_id


class Interaction(models.Model):
    class Kind(models.TextChoices):
        CALL = "call", "Call"
        MEETING = "meeting", "Meeting"
        QBR = "qbr", "QBR"
        EMAIL = "email", "Email"
        OTHER = "other", "Other"

    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="interactions"
    )
    csm = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    occurred_at = models.DateTimeField()
    sentiment = models.SmallIntegerField(
        choices=[(-1, "Negative"), (0, "Neutral"), (1, "Positive")], default=0
    )
    summary = models.TextField(blank=True, default="")
    batch = models.ForeignKey(
        ImportBatch, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-occurred_at"]
        indexes = [models.Index(fields=["customer", "occurred_at"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(sentiment__gte=-1, sentiment__lte=1),
                name="interaction_sentiment_range",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} on {self.occurred_at:%Y-%m-%d}"


class Pulse(models.Model):
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="pulses"
    )
    csm = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    rating = models.PositiveSmallIntegerField()
    note = models.TextField(blank=True, default="")
    entered_at = models.DateTimeField()
    batch = models.ForeignKey(
        ImportBatch, null=True, blank=True, on_delete=models.SET_NULL
    )

    class Meta:
        ordering = ["-entered_at"]
        indexes = [models.Index(fields=["customer", "entered_at"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(rating__gte=1, rating__lte=5), name="pulse_rating_1_5"
            )
        ]

    def __str__(self) -> str:
        return f"{self.rating}/5 on {self.entered_at:%Y-%m-%d}"


class ScoreModel(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        ACTIVE = "active", "Active"
        RETIRED = "retired", "Retired"

    name = models.CharField(max_length=120)
    version = models.PositiveIntegerField(default=1)
    status = models.CharField(
        max_length=8, choices=Status.choices, default=Status.DRAFT
    )
    segment = models.CharField(
        max_length=64,
        blank=True,
        default="",
        help_text="Empty: the default model, for customers of any other segment.",
    )
    min_coverage = models.FloatField(default=0.5)
    band_unhealthy = models.FloatField("unhealthy from", default=20)
    band_neutral = models.FloatField("neutral from", default=40)
    band_healthy = models.FloatField("healthy from", default=60)
    band_very_healthy = models.FloatField("very healthy from", default=80)
    note = models.TextField(blank=True, default="", help_text="What changed and why.")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["name", "version"], name="score_model_unique_version"
            ),
            # One active default model (segment ""), at most one per segment.
            models.UniqueConstraint(
                fields=["segment"],
                condition=Q(status="active"),
                name="score_model_one_active_per_segment",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name}:{self.version}"

    @property
    def label(self) -> str:
        return f"{self.name}:{self.version}"

    @property
    def is_frozen(self) -> bool:
        return self.status != self.Status.DRAFT


class Component(models.Model):
    model = models.ForeignKey(
        ScoreModel, on_delete=models.CASCADE, related_name="components"
    )
    key = models.SlugField(max_length=64)
    name = models.CharField(max_length=120)
    weight = models.FloatField(help_text="Percent of the overall score.")
    replaces = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="replaced_by",
        help_text="When this component is present, it takes the weight of "
        "the one it replaces and that one is left out.",
    )

    class Meta:
        ordering = ["model", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["model", "key"], name="component_unique_key"
            )
        ]

    def __str__(self) -> str:
        return self.name


class Measure(models.Model):
    component = models.ForeignKey(
        Component, on_delete=models.CASCADE, related_name="measures"
    )
    metric = models.ForeignKey(Metric, on_delete=models.PROTECT)
    weight = models.FloatField(help_text="Relative weight within its component.")
    freshness_days = models.PositiveIntegerField(
        default=90, help_text="Imported readings older than this are stale."
    )
    curve = models.JSONField(
        help_text="A list of [value, points] pairs, values strictly increasing."
    )
    min_tenure_days = models.PositiveIntegerField(
        "minimum tenure (days)",
        default=0,
        help_text="The measure counts only once the customer has been a "
        "customer this many days; before that it is not yet applicable.",
    )

    class Meta:
        ordering = ["component", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["component", "metric"], name="measure_unique_metric"
            )
        ]

    def __str__(self) -> str:
        return f"{self.component.key}.{self.metric_id}"


class ScoreSnapshot(models.Model):
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="snapshots"
    )
    model = models.ForeignKey(
        ScoreModel, on_delete=models.PROTECT, related_name="snapshots"
    )
    as_of = models.DateField()
    score = models.FloatField(null=True, blank=True)
    band = models.CharField(max_length=16, choices=Band.choices)
    coverage = models.FloatField()
    breakdown = models.JSONField(default=dict)
    # ``band`` is always the band the score gives; an override in effect on
    # the snapshot's date is kept beside it, so both stay visible.
    overridden_band = models.CharField(
        max_length=16, choices=Band.choices, blank=True, default=""
    )
    override = models.ForeignKey(
        "Override",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="snapshots",
    )
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "model", "as_of"], name="snapshot_unique_day"
            )
        ]
        indexes = [
            models.Index(fields=["customer", "as_of"]),
            models.Index(fields=["as_of", "band"]),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.as_of}: {self.score} ({self.band})"

    @property
    def computed_band(self) -> str:
        return self.band

    @property
    def effective_band(self) -> str:
        """The band the team acts on: the override's when one applies."""
        return self.overridden_band or self.band


class BandTally(models.Model):
    """How many official snapshots a day holds per band: the dashboard's
    monthly band mix reads these instead of a week of snapshots per month.

    Filled when read (``selectors.band_mix_by_month``); writing snapshots of
    a day deletes that day's rows, so the next read counts again."""

    # The row of a day counted and found without snapshots.
    EMPTY_DAY = ""

    as_of = models.DateField()
    band = models.CharField(max_length=16, choices=Band.choices, blank=True)
    snapshots = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["as_of", "band"], name="band_tally_day")
        ]

    def __str__(self) -> str:
        return f"{self.as_of} {self.band}: {self.snapshots}"


class Override(models.Model):
    """A person's judgement of a customer's band, for a limited time.

    In effect on the days D with ``starts_on <= D < expires_on`` and, when it
    was ended early, ``D < ended_on``. Rows are never deleted: they are the
    audit trail, and the backtest checks them against what happened."""

    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="overrides"
    )
    band = models.CharField(
        max_length=16, choices=[c for c in Band.choices if c[0] != Band.UNSCORED]
    )
    computed_band = models.CharField(
        max_length=16,
        choices=Band.choices,
        blank=True,
        default="",
        help_text="The band the score gave when the override was made.",
    )
    reason = models.TextField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.SET_NULL,
        related_name="band_overrides",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    starts_on = models.DateField()
    expires_on = models.DateField()
    ended_on = models.DateField(null=True, blank=True)
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="ended_band_overrides",
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["customer", "starts_on"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(expires_on__gt=F("starts_on")),
                name="override_expires_after_start",
            )
        ]

    def __str__(self) -> str:
        return f"{self.customer_id}: {self.band} until {self.expires_on}"

    def in_effect_on(self, day) -> bool:
        if self.ended_on is not None and day >= self.ended_on:
            return False
        return self.starts_on <= day < self.expires_on


class JobRun(models.Model):
    """A long job as the UI and commands see it: what, how far, how it ended.

    Progress counts customers (or dates, for a backfill)."""

    class Kind(models.TextChoices):
        SCORE_ALL = "score_all", "Score all"
        SCORE_CUSTOMERS = "score_customers", "Score customers"
        BACKFILL = "backfill", "Backfill"
        NIGHTLY = "nightly", "Nightly score"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        STALE = "stale", "Stale (worker lost)"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(
        max_length=12, choices=Status.choices, default=Status.QUEUED
    )
    params = models.JSONField(default=dict, blank=True)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["kind", "status", "finished_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} ({self.status})"

    @property
    def progress(self) -> str:
        return f"{self.done} / {self.total}"


class ImportProfile(models.Model):
    """How another tool's export maps onto one canonical import kind: its
    column names, how it writes dates, numbers, booleans and missing values,
    value maps, and which customer field its customer column matches. The
    rules that check a profile live in ``health.import_profiles``."""

    class Kind(models.TextChoices):
        USERS = "users", "users"
        CUSTOMERS = "customers", "customers"
        READINGS = "readings", "readings"
        TICKETS = "tickets", "tickets"
        NPS = "nps", "nps"
        OPPORTUNITIES = "opportunities", "opportunities"
        INTERACTIONS = "interactions", "interactions"
        PULSES = "pulses", "pulses"

    class DateOrder(models.TextChoices):
        FROM_FILE = "", "ISO, or the order the file proves"
        DAY_FIRST = "dmy", "Day first (31/12/2024)"
        MONTH_FIRST = "mdy", "Month first (12/31/2024)"

    class CustomerField(models.TextChoices):
        EXTERNAL_ID = "external_id", "CRM account id"
        SUPPORT_ID = "support_id", "Support desk id"
        ANALYTICS_ID = "analytics_id", "Product analytics id"
        NAME = "name", "Name"

    class ThousandsSeparator(models.TextChoices):
        NONE = "", "None"
        COMMA = ",", "Comma (1,234)"
        POINT = ".", "Point (1.234)"
        SPACE = " ", "Space (1 234)"
        APOSTROPHE = "'", "Apostrophe (1'234)"

    name = models.SlugField(
        max_length=64,
        unique=True,
        help_text="Used as KIND in manage.py import_data KIND FILE.",
    )
    kind = models.CharField(max_length=32, choices=Kind.choices)
    description = models.TextField(blank=True, default="")
    columns = models.JSONField(
        default=dict,
        blank=True,
        help_text='Canonical column to file header, e.g. {"external_id": "Id"}.',
    )
    constants = models.JSONField(
        default=dict,
        blank=True,
        help_text='A value for a column the file lacks, e.g. {"kind": "new"}.',
    )
    value_maps = models.JSONField(
        default=dict,
        blank=True,
        help_text="Per canonical column, file value to canonical value "
        '(case ignored; "" means missing), e.g. {"stage": {"Won": "won"}}.',
    )
    customer_field = models.CharField(
        max_length=16, choices=CustomerField.choices, default="external_id"
    )
    date_order = models.CharField(
        max_length=3, choices=DateOrder.choices, blank=True, default=""
    )
    decimal_comma = models.BooleanField(default=False)
    thousands_separator = models.CharField(
        max_length=1, choices=ThousandsSeparator.choices, blank=True, default=""
    )
    true_words = models.CharField(
        max_length=200, blank=True, default="", help_text="Comma-separated."
    )
    false_words = models.CharField(
        max_length=200, blank=True, default="", help_text="Comma-separated."
    )
    missing_values = models.CharField(
        max_length=200,
        blank=True,
        default="NA, N/A, -, null",
        help_text="Comma-separated words read as an empty cell (case ignored).",
    )
    encoding = models.CharField(
        max_length=32, blank=True, default="", help_text="Empty: detected."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
