from django import forms
from django.contrib.auth import get_user_model

from health.models import Band, Customer
from playbooks.models import Playbook
from workbench.roles import ROLES


def workbench_users():
    """Users who hold a role, so who can own work."""
    return (
        get_user_model()
        .objects.filter(is_active=True, groups__name__in=ROLES)
        .distinct()
        .order_by("first_name", "last_name", "username")
    )


class UserChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj) -> str:
        return obj.get_full_name() or obj.get_username()


class CompleteTaskForm(forms.Form):
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    sentiment = forms.TypedChoiceField(
        choices=[(1, "Positive"), (0, "Neutral"), (-1, "Negative")],
        coerce=int,
        initial=0,
        required=False,
        empty_value=0,
        help_text="For steps that log an interaction: how it went.",
    )


class AssignForm(forms.Form):
    # TODO: a plain select of every customer grows heavy past a few thousand
    # (an autocomplete widget, or assigning from the customer page, fixes it)
    playbook = forms.ModelChoiceField(Playbook.objects.filter(is_active=True))
    customer = forms.ModelChoiceField(Customer.objects.filter(churned_on__isnull=True))
    owner = UserChoiceField(
        workbench_users(), required=False, help_text="Empty: the customer's CSM."
    )


class BulkAssignForm(forms.Form):
    playbook = forms.ModelChoiceField(Playbook.objects.filter(is_active=True))
    band = forms.ChoiceField(choices=[("", "Any")] + Band.choices, required=False)
    segment = forms.CharField(max_length=64, required=False)
    owner = UserChoiceField(workbench_users(), required=False, label="Customer owner")

    def clean(self):
        data = super().clean()
        if not (data.get("band") or data.get("segment") or data.get("owner")):
            raise forms.ValidationError(
                "Choose at least one filter: band, segment or owner."
            )
        return data


class ReassignForm(forms.Form):
    owner = UserChoiceField(workbench_users())


class CancelForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}))
