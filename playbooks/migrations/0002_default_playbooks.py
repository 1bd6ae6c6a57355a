"""The default playbooks, one per band. Admins edit them in the Django admin;
this migration only creates them, and removing it removes only them."""

from django.db import migrations

# (name, band, from_bands, purpose, steps); a step is (title, due in days,
# interaction kind or "", guidance).
DEFAULT_PLAYBOOKS = [
    (
        "Triage",
        "very_unhealthy",
        [],
        "Stop the bleeding and decide, quickly and honestly, whether the "
        "account can be saved. Some of these customers cannot be.",
        [
            (
                "Call the executive sponsor",
                2,
                "call",
                "Hear, in their words, what went wrong and what is at stake. "
                "Agree on a date for the next conversation.",
            ),
            (
                "Find the root cause",
                5,
                "",
                "Read the score breakdown (adoption, support, purchasing, "
                "interactions), the open tickets and any lost deals. Write "
                "the cause in the note.",
            ),
            (
                "Decide: rescue plan or likely lost",
                7,
                "",
                "Rescue: agree a plan with the sponsor and your manager. "
                "Likely lost: say so in the note, so that the forecast and "
                "the renewal plan reflect it.",
            ),
        ],
    ),
    (
        "Recovery plan",
        "unhealthy",
        [],
        "Agree a written plan with the customer that brings the account back "
        "to neutral, and check it is working.",
        [
            (
                "Review the health breakdown with your manager",
                3,
                "",
                "Pick the one or two components that pulled the score down.",
            ),
            (
                "Hold a recovery call with the customer",
                7,
                "call",
                "Share what you see, ask what they see, agree what success "
                "looks like in 30 days.",
            ),
            (
                "Send the written recovery plan",
                14,
                "email",
                "Goals, owners on both sides and dates; ask for a reply that "
                "confirms it.",
            ),
            (
                "Check progress against the plan",
                30,
                "meeting",
                "Go through each goal; adjust the plan or escalate.",
            ),
        ],
    ),
    (
        "Unlock the untapped",
        "neutral",
        [],
        "Neutral customers are where time pays most: they are not in "
        "trouble, and not yet getting what they paid for.",
        [
            (
                "Write or refresh the success plan",
                14,
                "meeting",
                "Agree the customer's goals and how they will measure them.",
            ),
            (
                "Run an adoption session",
                21,
                "meeting",
                "Show the users the features they do not use yet and that "
                "serve the success plan.",
            ),
            (
                "Hold a QBR",
                45,
                "qbr",
                "Review value delivered against the success plan with the "
                "sponsor; agree the next quarter's goals.",
            ),
        ],
    ),
    (
        "Expand",
        "healthy",
        # Falling from very healthy is a warning, not a moment to sell.
        ["very_unhealthy", "unhealthy", "neutral"],
        "A healthy customer who gets value is ready to hear about more.",
        [
            (
                "Review cross-sell fit",
                14,
                "",
                "List the products they do not own that serve their goals; "
                "check open opportunities with sales.",
            ),
            (
                "Hold an expansion conversation",
                30,
                "call",
                "Connect the customer's next goals to what they could add.",
            ),
            (
                "Hand qualified opportunities to sales",
                45,
                "",
                "Create the opportunity in the CRM and introduce the account "
                "executive.",
            ),
        ],
    ),
    (
        "Advocacy",
        "very_healthy",
        [],
        "Turn a thriving customer into a voice for the product.",
        [
            (
                "Ask for a reference",
                14,
                "call",
                "Ask whether they would talk to a prospect like them.",
            ),
            (
                "Propose a case study",
                30,
                "email",
                "Suggest a short written story of the results they reached.",
            ),
            (
                "Invite to the advisory board or a review",
                45,
                "",
                "The customer advisory board, a public review site, or a "
                "talk at an event.",
            ),
        ],
    ),
]


def create_playbooks(apps, schema_editor):
    Playbook = apps.get_model("playbooks", "Playbook")
    Step = apps.get_model("playbooks", "Step")
    for name, band, from_bands, purpose, steps in DEFAULT_PLAYBOOKS:
        playbook, created = Playbook.objects.get_or_create(
            name=name,
            defaults={"band": band, "from_bands": from_bands, "purpose": purpose},
        )
        if not created:
            continue
        Step.objects.bulk_create(
            [
                Step(
                    playbook=playbook,
                    position=position,
                    title=title,
                    due_in_days=due,
                    interaction_kind=kind,
                    guidance=guidance,
                )
                for position, (title, due, kind, guidance) in enumerate(steps, 1)
            ]
        )


def remove_playbooks(apps, schema_editor):
    Playbook = apps.get_model("playbooks", "Playbook")
    Assignment = apps.get_model("playbooks", "Assignment")
    names = [p[0] for p in DEFAULT_PLAYBOOKS]
    Assignment.objects.filter(playbook__name__in=names).delete()
    Playbook.objects.filter(name__in=names).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("playbooks", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(create_playbooks, remove_playbooks),
    ]
