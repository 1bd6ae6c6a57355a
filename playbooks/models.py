"""Playbooks turn a customer's band into work for its CSM.

A *playbook* is a plan for one band, made of ordered *steps*. Giving a
playbook to a customer makes an *assignment*, whose *tasks* copy the steps,
so that editing a playbook later leaves the history of past work intact.
"""

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q

from health.models import Band, Customer, Interaction, ScoreSnapshot


class Playbook(models.Model):
    name = models.CharField(max_length=120, unique=True)
    purpose = models.TextField(blank=True, default="")
    band = models.CharField(
        max_length=16,
        choices=Band.choices,
        db_index=True,
        help_text="Entering this band assigns the playbook.",
    )
    from_bands = models.JSONField(
        default=list,
        blank=True,
        help_text="Only when entered from one of these bands (a list of band "
        'keys such as ["neutral"]); empty: from any band, or a first score.',
    )
    required_days = models.PositiveSmallIntegerField(
        default=1,
        validators=[MinValueValidator(1)],
        help_text="Consecutive daily snapshots the new band must hold before "
        "the playbook is assigned; more than 1 keeps flapping scores quiet.",
    )
    is_active = models.BooleanField("active", default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Step(models.Model):
    playbook = models.ForeignKey(
        Playbook, on_delete=models.CASCADE, related_name="steps"
    )
    position = models.PositiveSmallIntegerField(default=1)
    title = models.CharField(max_length=200)
    guidance = models.TextField(blank=True, default="")
    due_in_days = models.PositiveSmallIntegerField(
        default=7, help_text="Days after the assignment opens."
    )
    interaction_kind = models.CharField(
        max_length=16,
        choices=Interaction.Kind.choices,
        blank=True,
        default="",
        help_text="When set, completing the step logs an interaction of this "
        "kind, which feeds the health score.",
    )

    class Meta:
        ordering = ["playbook", "position", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["playbook", "position"], name="step_unique_position"
            )
        ]

    def __str__(self) -> str:
        return f"{self.position}. {self.title}"

    @property
    def logs_interaction(self) -> bool:
        return bool(self.interaction_kind)


class Assignment(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        DONE = "done", "Done"
        CANCELLED = "cancelled", "Cancelled"
        OBSOLETE = "obsolete", "Obsolete"

    class Outcome(models.TextChoices):
        COMPLETED = "completed", "Completed"
        RECOVERED = "recovered", "Recovered"
        CANCELLED = "cancelled", "Cancelled"

    playbook = models.ForeignKey(
        Playbook, on_delete=models.PROTECT, related_name="assignments"
    )
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="playbook_assignments"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="playbook_assignments",
    )
    assigned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Empty: assigned automatically on a band change.",
    )
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.OPEN
    )
    band = models.CharField(
        max_length=16,
        choices=Band.choices,
        blank=True,
        default="",
        help_text="The customer's band when the playbook was assigned.",
    )
    opened_on = models.DateField()
    due_on = models.DateField()
    closed_at = models.DateTimeField(null=True, blank=True)
    trigger_snapshot = models.ForeignKey(
        ScoreSnapshot,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    outcome = models.CharField(
        max_length=16, choices=Outcome.choices, blank=True, default=""
    )
    reason = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["due_on", "id"]
        constraints = [
            # Two workers handling the same band change must not both assign.
            models.UniqueConstraint(
                fields=["customer", "playbook"],
                condition=Q(status="open"),
                name="assignment_one_open_per_playbook",
            )
        ]
        indexes = [
            models.Index(fields=["status", "due_on"]),
            models.Index(fields=["owner", "status"]),
        ]

    def __str__(self) -> str:
        return f"{self.playbook} for {self.customer}"

    @property
    def is_automatic(self) -> bool:
        return self.assigned_by_id is None


class Task(models.Model):
    assignment = models.ForeignKey(
        Assignment, on_delete=models.CASCADE, related_name="tasks"
    )
    step = models.ForeignKey(
        Step, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    position = models.PositiveSmallIntegerField(default=1)
    title = models.CharField(max_length=200)
    guidance = models.TextField(blank=True, default="")
    interaction_kind = models.CharField(
        max_length=16, choices=Interaction.Kind.choices, blank=True, default=""
    )
    due_on = models.DateField()
    done_at = models.DateTimeField(null=True, blank=True)
    done_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    note = models.TextField(blank=True, default="")
    interaction = models.ForeignKey(
        Interaction,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        ordering = ["due_on", "position", "id"]
        indexes = [models.Index(fields=["due_on", "done_at"])]

    def __str__(self) -> str:
        return self.title

    @property
    def logs_interaction(self) -> bool:
        return bool(self.interaction_kind)
