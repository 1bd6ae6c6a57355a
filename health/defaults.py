"""The metric catalogue and the default score model, as DESIGN.md fixes them.

Plain data, read by the data migration that seeds a new database and by tests
that check the seed against DESIGN.md's table.
"""

IMPORTED, DERIVED = "imported", "derived"

# (key, name, unit, source, description)
METRICS = [
    ("active_user_ratio", "Active user ratio", "ratio", IMPORTED,
     "Active users / licensed seats, 0-1."),
    ("feature_adoption_ratio", "Feature adoption ratio", "ratio", IMPORTED,
     "Share of the product's key features in use, 0-1."),
    ("login_days_30d", "Login days (30 days)", "days", IMPORTED,
     "Days with at least one login in the last 30 days, 0-30."),
    ("it_ecosystem_fit", "IT ecosystem fit", "score", IMPORTED,
     "Long-term input: how well the product fits the customer's stack, 0-100."),
    ("security_maturity", "Security maturity", "score", IMPORTED,
     "Long-term input: the customer's security maturity, 0-100."),
    ("product_certifications", "Product certifications", "count", IMPORTED,
     "Long-term input: people certified on the product."),
    ("nps", "NPS", "score", DERIVED,
     "Latest response per contact in 180 days; at least 3 contacts."),
    ("median_hours_to_close", "Median hours to close", "hours", DERIVED,
     "Median resolution time of tickets closed in 90 days."),
    ("escalations_90d", "Escalations (90 days)", "count", DERIVED,
     "Escalated tickets opened in 90 days."),
    ("product_count", "Products owned", "count", DERIVED,
     "Distinct products of won opportunities."),
    ("renewal_count", "Renewals won", "count", DERIVED,
     "Won renewal opportunities."),
    ("lost_opportunity_share", "Lost opportunity share", "ratio", DERIVED,
     "Lost in 365 days / (lost + open)."),
    ("days_since_interaction", "Days since interaction", "days", DERIVED,
     "Days since the latest logged interaction."),
    ("interaction_sentiment", "Interaction sentiment", "mean", DERIVED,
     "Mean sentiment (-1..+1) of interactions in 90 days."),
    ("pulse", "CSM pulse", "rating", DERIVED,
     "The CSM's latest 1-5 pulse in 60 days."),
]  # fmt: skip

DEFAULT_MODEL_NAME = "Default"

# (key, name, weight, replaces, [(metric, weight, curve)])
DEFAULT_COMPONENTS = [
    ("adoption", "Product adoption", 40, None, [
        ("active_user_ratio", 50, [[0, 0], [0.5, 60], [0.8, 100]]),
        ("feature_adoption_ratio", 30, [[0, 0], [0.6, 100]]),
        ("login_days_30d", 20, [[0, 0], [10, 60], [20, 100]]),
    ]),
    ("support", "Support experience", 35, None, [
        ("nps", 40, [[-100, 0], [0, 50], [70, 100]]),
        ("median_hours_to_close", 30, [[4, 100], [24, 70], [72, 30], [168, 0]]),
        ("escalations_90d", 30, [[0, 100], [1, 60], [3, 20], [5, 0]]),
    ]),
    ("purchasing", "Purchasing behaviour", 25, None, [
        ("product_count", 30, [[1, 40], [2, 70], [4, 100]]),
        ("renewal_count", 30, [[0, 50], [1, 75], [3, 100]]),
        ("lost_opportunity_share", 40, [[0, 100], [0.5, 40], [1, 0]]),
    ]),
    # A replacing component takes the weight of the one it replaces; its own
    # weight is not counted towards the model's 100.
    ("interactions", "CS interactions", 0, "support", [
        ("days_since_interaction", 40, [[0, 100], [14, 80], [45, 30], [90, 0]]),
        ("interaction_sentiment", 60, [[-1, 0], [0, 50], [1, 100]]),
    ]),
]  # fmt: skip
