"""Names a reader sees: outcome labels and moderator column titles (no numpy or pandas, so the workflow's
parse imports only this)."""

OUTCOME_LABELS = {
    "cr": "complete response",
    "cr_itt": "complete response by intention to treat",
    "scrs": "severe CRS",
    "scns": "severe neurotoxicity",
}


def outcome_title(outcome):
    """'Severe CRS', 'Complete response': the label with its first letter capitalised, acronyms kept."""
    label = OUTCOME_LABELS[outcome]
    return label[0].upper() + label[1:]


COLUMN_TITLES = {"mrd_only": "MRD-only enrolment", "source_type": "Source type (paper or abstract)"}


def column_title(column):
    """'costimulatory_domain' -> 'Costimulatory domain', with a few names spelled out."""
    return COLUMN_TITLES.get(column, column.replace("_", " ").capitalize())
