"""Forms of the workbench pages: what a CSM logs and what a manager changes."""

from datetime import UTC, datetime, time

from django import forms
from django.contrib.auth import get_user_model
from django.utils import timezone

from health.models import Interaction, Override
from health.tuning import DEFAULT_OVERRIDE_DAYS, MAX_OVERRIDE_DAYS
from workbench.roles import CSM

SENTIMENTS = [(1, "Positive"), (0, "Neutral"), (-1, "Negative")]
RATINGS = [(n, str(n)) for n in range(1, 6)]


class InteractionForm(forms.Form):
    kind = forms.ChoiceField(choices=Interaction.Kind.choices)
    occurred_on = forms.DateField(
        label="Date", widget=forms.DateInput(attrs={"type": "date"})
    )
    sentiment = forms.TypedChoiceField(
        choices=SENTIMENTS, coerce=int, initial=0, widget=forms.RadioSelect
    )
    summary = forms.CharField(
        required=False, max_length=4000, widget=forms.Textarea(attrs={"rows": 3})
    )

    def clean_occurred_on(self):
        day = self.cleaned_data["occurred_on"]
        if day > timezone.now().astimezone(UTC).date():
            raise forms.ValidationError("An interaction cannot be in the future.")
        return day

    def occurred_at(self) -> datetime:
        """Now for an interaction of today; noon UTC for an earlier day, so
        that the day stays the same in every time zone near UTC."""
        day = self.cleaned_data["occurred_on"]
        now = timezone.now()
        if day == now.astimezone(UTC).date():
            return now
        return datetime.combine(day, time(12), tzinfo=UTC)


class PulseForm(forms.Form):
    rating = forms.TypedChoiceField(
        label="Your read of the account (1 = at risk, 5 = thriving)",
        choices=RATINGS,
        coerce=int,
        widget=forms.RadioSelect,
    )
    note = forms.CharField(
        required=False, max_length=4000, widget=forms.Textarea(attrs={"rows": 2})
    )


def csm_users():
    return (
        get_user_model()
        .objects.filter(groups__name=CSM, is_active=True)
        .order_by("first_name", "last_name", "username")
        .distinct()
    )


class _UserChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, user) -> str:
        return user.get_full_name() or user.get_username()


class OwnerForm(forms.Form):
    owner = _UserChoiceField(
        queryset=csm_users(), required=False, empty_label="No owner", label="Owner"
    )


class OverrideForm(forms.Form):
    """A band override as a person enters it. The rules (at most 90 days, a
    reason) live in ``tuning.override_band``; its errors land on these
    fields."""

    band = forms.ChoiceField(
        label="Band to use",
        choices=[("", "Choose a band"), *Override._meta.get_field("band").choices],
    )
    reason = forms.CharField(
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        error_messages={"required": "Give a reason for the override."},
    )
    days = forms.IntegerField(
        label=f"For how many days (at most {MAX_OVERRIDE_DAYS})",
        initial=DEFAULT_OVERRIDE_DAYS,
        widget=forms.NumberInput(attrs={"min": 1, "max": MAX_OVERRIDE_DAYS}),
    )
