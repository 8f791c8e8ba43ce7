"""The registry: outcomes (declared in config), methods, exclusion reason codes, overlap rules and the spellings of
"unknown". Every dispatch on a method, outcome, reason or rule looks its key up here, and an unknown key raises.

No numpy or pandas: the workflow's parse imports this module.
"""

import math
from dataclasses import dataclass


class UnknownKey(KeyError):
    """A method, outcome, reason or rule the registry does not know."""

    def __str__(self):
        return str(self.args[0])


def _look_up(table, key, what):
    try:
        return table[key]
    except (KeyError, TypeError):
        raise UnknownKey(f"unknown {what} {key!r}; known: {', '.join(map(str, table))}") from None


# ---- methods -------------------------------------------------------------------------------------------------

REFERENCES = {
    "clopper-pearson": "Clopper CJ, Pearson ES. Biometrika 1934;26:404-413.",
    "glmm": "Stijnen T, Hamza TH, Özdemir P. Stat Med 2010;29:3046-3067.",
    "dl": "DerSimonian R, Laird N. Control Clin Trials 1986;7:177-188.",
    "reml": "Viechtbauer W. J Educ Behav Stat 2005;30:261-293.",
    "pm": "Paule RC, Mandel J. J Res Natl Bur Stand 1982;87:377-385.",
    "hksj": "Hartung J, Knapp G. Stat Med 2001;20:3875-3889; Sidik K, Jonkman JN. Stat Med 2002;21:3153-3159.",
    "ft": "Freeman MF, Tukey JW. Ann Math Stat 1950;21:607-611; Miller JJ. Am Stat 1978;32:138.",
    "ft-warning": "Schwarzer G, Chemaitelly H, Abu-Raddad LJ, Rücker G. Res Synth Methods 2019;10:476-483.",
    "bayes": "Friede T, Röver C, Wandel S, Neuenschwander B. Biom J 2017;59:658-671.",
    "qprofile": "Viechtbauer W. Stat Med 2007;26:37-52.",
    "ee": "Hedges LV, Vevea JL. Psychol Methods 1998;3:486-504.",
    "influence": "Viechtbauer W, Cheung MWL. Res Synth Methods 2010;1:112-125.",
    "baujat": "Baujat B, Mahé C, Pignon JP, Hill C. Stat Med 2002;21:2641-2652.",
    "i2": "Higgins JPT, Thompson SG. Stat Med 2002;21:1539-1558.",
    "pi": "Higgins JPT, Thompson SG, Spiegelhalter DJ. J R Stat Soc A 2009;172:137-159.",
    "metafor": "Viechtbauer W. J Stat Softw 2010;36(3):1-48.",
    "egger": "Egger M, Davey Smith G, Schneider M, Minder C. BMJ 1997;315:629-634.",
    "peters": "Peters JL, Sutton AJ, Jones DR, Abrams KR, Rushton L. JAMA 2006;295:676-680.",
    "sterne": "Sterne JAC, Sutton AJ, Ioannidis JPA, et al. BMJ 2011;343:d4002.",
    "hunter": "Hunter JP, Saratzis A, Sutton AJ, et al. J Clin Epidemiol 2014;67:897-903.",
    "prisma": "Page MJ, McKenzie JE, Bossuyt PM, et al. BMJ 2021;372:n71.",
    "cumulative": "Lau J, Antman EM, Jimenez-Silva J, et al. N Engl J Med 1992;327:248-254.",
}


@dataclass(frozen=True)
class Method:
    """A pooling method: its family (glmm, inverse-variance, bayes), scale (logit, ft), tau^2 estimator, CI."""

    token: str
    family: str
    scale: str
    tau2: str | None
    hksj: bool
    label: str
    references: tuple

    @property
    def common(self):
        """A common-effect (fixed-intercept) model: tau^2 is 0 by definition (tau2 'ee', metafor's method="EE")."""
        return self.tau2 == "ee"

    @property
    def logit_random_effects(self):
        """An inverse-variance random-effects method on the logit scale (metafor's influence() applies)."""
        return self.family == "inverse-variance" and self.scale == "logit" and not self.common


TAU2_ESTIMATORS = {"dl": "DerSimonian-Laird", "reml": "REML", "pm": "Paule-Mandel"}
COMMON_EFFECT = "ee"  # the tau2 of a common-effect method: none estimated, 0 by definition


def _methods():
    found = [
        Method("glmm", "glmm", "logit", None, False, "random-intercept logistic model (GLMM, maximum likelihood)",
               ("glmm", "metafor")),
    ]
    for hksj in (False, True):
        for tau2, name in TAU2_ESTIMATORS.items():
            found.append(Method(
                f"logit-{tau2}" + ("-hksj" if hksj else ""), "inverse-variance", "logit", tau2, hksj,
                f"inverse variance on the logit scale, {name}" + (", Hartung-Knapp-Sidik-Jonkman CI" if hksj else ""),
                (tau2, "hksj") if hksj else (tau2,)))
    found += [
        Method("ft-dl", "inverse-variance", "ft", "dl", False, "Freeman-Tukey double arcsine, DerSimonian-Laird",
               ("ft", "dl", "ft-warning")),
        Method("bayes", "bayes", "logit", None, False,
               "Bayesian binomial-normal model (posterior median, central credible interval)", ("bayes",)),
        Method("logit-ee", "inverse-variance", "logit", COMMON_EFFECT, False,
               "common effect, inverse variance on the logit scale", ("ee",)),
        Method("ft-ee", "inverse-variance", "ft", COMMON_EFFECT, False,
               "common effect, Freeman-Tukey double arcsine", ("ft", "ee", "ft-warning")),
        Method("glmm-ee", "glmm", "logit", COMMON_EFFECT, False,
               "common-effect logistic model (fixed intercept, maximum likelihood)", ("ee", "metafor")),
    ]
    return {m.token: m for m in found}


METHODS = _methods()


def method(token):
    """The registry entry of a method token; an unknown token raises UnknownKey."""
    return _look_up(METHODS, token, "method")


# ---- outcomes ------------------------------------------------------------------------------------------------

ROLES = ("efficacy", "safety")
# the keys of an outcome entry in config.yaml (the JSON schema is tested against this list)
OUTCOME_KEYS = ("id", "label", "events", "percent", "denominator", "counted_over", "role", "higher_is_better",
                "definition")


@dataclass(frozen=True)
class Outcome:
    """An outcome as declared in config: its columns in the trial tables and what it means.

    `events`: the column of exact counts; `percent`: the column of printed percentages (either may be absent);
    `denominator`: the patients the rate is over (a column other than n falls back to n where blank, said row by
    row); `counted_over`: the column the events and percentages were counted over when it is not the denominator
    (an intention-to-treat rate keeps the responders counted over n and divides by the enrolled patients).
    """

    id: str
    label: str
    events: str | None = None
    percent: str | None = None
    denominator: str = "n"
    counted_over: str | None = None
    role: str = "efficacy"
    higher_is_better: bool = True
    definition: str = ""

    @property
    def base(self):
        """The column the events (or printed percentage) are counted over."""
        return self.counted_over or self.denominator

    @property
    def title(self):
        """'Severe CRS', 'Complete response': the label with its first letter capitalised, acronyms kept."""
        return self.label[0].upper() + self.label[1:]

    def count_columns(self):
        """The columns of whole numbers this outcome reads."""
        return [c for c in (self.events, self.denominator, self.counted_over) if c]


def outcome_from(entry):
    """An Outcome from one config entry (a dict, as the schema allows)."""
    unknown = sorted(set(entry) - set(OUTCOME_KEYS))
    if unknown:
        raise UnknownKey(f"outcome '{entry.get('id')}': unknown key(s) {', '.join(unknown)}")
    role = entry.get("role", "efficacy")
    _look_up(dict.fromkeys(ROLES), role, "outcome role")
    return Outcome(id=entry["id"], label=entry.get("label") or entry["id"], events=entry.get("events"),
                   percent=entry.get("percent"), denominator=entry.get("denominator", "n"),
                   counted_over=entry.get("counted_over"), role=role,
                   higher_is_better=entry.get("higher_is_better", role == "efficacy"),
                   definition=entry.get("definition", ""))


class Outcomes:
    """The configured outcomes by id, in config order; looking up an id that is not declared raises."""

    def __init__(self, entries):
        self._by_id = {}
        for entry in entries:
            outcome = entry if isinstance(entry, Outcome) else outcome_from(entry)
            if outcome.id in self._by_id:
                raise UnknownKey(f"outcome id '{outcome.id}' is declared twice")
            self._by_id[outcome.id] = outcome

    def __getitem__(self, outcome_id):
        return _look_up(self._by_id, outcome_id, "outcome")

    def __iter__(self):
        return iter(self._by_id.values())

    def __len__(self):
        return len(self._by_id)

    @property
    def ids(self):
        return list(self._by_id)

    @property
    def primary(self):
        """The first efficacy outcome (the first outcome when none is declared efficacy)."""
        return next((o for o in self if o.role == "efficacy"), next(iter(self)))

    def label(self, outcome_id):
        return self[outcome_id].label

    def title(self, outcome_id):
        return self[outcome_id].title


def outcomes_of(config):
    """The Outcomes of a config (its `outcomes` list of entries)."""
    return Outcomes(config["outcomes"])


def count_columns(outcomes):
    """Every column of whole numbers the outcomes read, n first."""
    return list(dict.fromkeys(["n", *(c for o in outcomes for c in o.count_columns())]))


# ---- exclusion reasons ---------------------------------------------------------------------------------------

# Code -> the category the flow diagram and the report count exclusions by, in the order the diagram lists them.
REASONS = {
    "overlap": "overlapping cohort",
    "inconsistent": "inconsistent count",
    "bound": "bound rather than a count",
    "unreadable": "unreadable value",
    "unplaced": "value not placed in a column",
    "not_reported": "not reported",
    "no_column": "not reported",
    "n_missing": "not reported",
    "n_zero": "n is 0",
    "moderator_unknown": "moderator unknown",
}


def reason_category(code):
    """The category of an exclusion reason code; an unknown code raises UnknownKey."""
    return _look_up(REASONS, code, "reason code")


# ---- overlap rules -------------------------------------------------------------------------------------------

OVERLAP_RULES = {
    "largest": "the largest cohort of the set is kept",
    "latest": "the most recent cohort of the set is kept",
    "earliest": "the earliest cohort of the set is kept",
    "none": "overlapping cohorts are all kept",
}


def overlap_rule(rule):
    return _look_up(OVERLAP_RULES, rule, "overlap rule")


# ---- spellings -----------------------------------------------------------------------------------------------

# Moderator values read as "not known": their spellings may vary freely (compared in lower case).
UNKNOWN = frozenset({"", "unknown", "not reported", "nr", "na", "n/a"})


def moderator_number(value):
    """A numeric moderator's cell as a float: NaN when unknown (blank, 'Unknown', 'Not reported', ...), None when it
    is not a finite number (a '_' digit separator included, which float() would read); a typographic minus reads."""
    text = "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value).strip()
    if text.lower() in UNKNOWN:
        return math.nan
    try:
        number = float(text.replace("\u2212", "-"))
    except ValueError:
        return None
    return number if math.isfinite(number) and "_" not in text else None
# Printed rates read as "not reported" (compared in lower case).
NOT_REPORTED = frozenset(UNKNOWN - {""} | {"-", "—"})

CI_METHODS = {
    "clopper-pearson": "exact binomial (Clopper-Pearson)", "wilson": "Wilson score", "jeffreys": "Jeffreys",
    "agresti-coull": "Agresti-Coull", "wald": "Wald",
}
FIGURE_FORMATS = ("pdf", "png", "svg")

COLUMN_TITLES = {"mrd_only": "MRD-only enrolment", "source_type": "Source type (paper or abstract)",
                 "year": "Publication year"}


def in_sentence(title):
    """A title inside a sentence: 'Age group' -> 'age group', but 'MRD-only enrolment' keeps its acronym."""
    return title if title[1:2].isupper() else title[:1].lower() + title[1:]


def column_title(column):
    """'costimulatory_domain' -> 'Costimulatory domain', with a few names spelled out."""
    return COLUMN_TITLES.get(column, column.replace("_", " ").capitalize())


# ---- method bayes: priors ------------------------------------------------------------------------------------

DEFAULTS = {"mu_sd": 2.0, "tau_prior": "half-normal", "tau_scale": 0.5, "deltas": [0.0, 0.1, 0.2],
            "sensitivity_priors": [{"tau_prior": "half-normal", "tau_scale": 0.25},
                                   {"tau_prior": "half-normal", "tau_scale": 0.5},
                                   {"tau_prior": "half-normal", "tau_scale": 1.0},
                                   {"tau_prior": "half-cauchy", "tau_scale": 1.0}]}


def settings_of(config_bayes=None):
    """The `bayes` block of config.yaml with its defaults filled in."""
    return {**DEFAULTS, **(config_bayes or {})}


def describe_prior(mu_sd, family, scale):
    """'mu ~ N(0, 2^2), tau ~ half-normal(0.5)'."""
    return f"mu ~ N(0, {mu_sd:g}^2) on the logit scale, tau ~ {family}({scale:g})"


# ---- the comparison ------------------------------------------------------------------------------------------

def comparison_pairs(order):
    """(first, second) for every pair of the modalities in `order`, each in the configured direction."""
    order = list(order)
    return [(a, b) for i, a in enumerate(order) for b in order[i + 1:]]


def comparison_order(present, comparison):
    """The modalities `present` in the order of config's `comparison`, those it does not name after them in the
    order given."""
    named = [m for m in dict.fromkeys(comparison or []) if m in present]
    return named + [m for m in present if m not in named]


def in_comparison_order(table, comparison, column="modality"):
    """The rows of `table` grouped by `column`'s modality in the order of config's `comparison` (modalities it
    does not name after, in their order), stable inside: figures list modalities as the text compares them."""
    rank = {m: i for i, m in enumerate(comparison)}
    keys = [rank.get(v, len(rank)) for v in table[column]]
    return table.iloc[sorted(range(len(keys)), key=keys.__getitem__)]


# ---- shared by tables, figures and report (here so that a figure or report job imports no fitting code) -------

def subgroups_of(studies, column="modality"):
    """Subgroups (values of `column`: modality, or the group of a moderator analysis) in order of first appearance."""
    return list(dict.fromkeys(studies[column]))


def milestone_steps(k):
    """Steps 1-5, 10, 20, 50, 100, 200, 500, ... up to k: where a long cumulative meta-analysis is shown."""
    steps, base = [1, 2, 3, 4, 5], 10
    while base <= k:
        steps += [base, 2 * base, 5 * base]
        base *= 10
    return [s for s in steps if s <= k]


def prob_column(delta):
    """Column of P(difference > delta): 'prob_gt_0.1' (delta as a fraction, as in config)."""
    return f"prob_gt_{float(delta):g}"


def level_label(level):
    """'95%', '97.5%', '99.9%': the confidence level as a percentage with every digit it has (0.9512345 ->
    '95.12345%'), never rounded up to '100%'."""
    return f"{round(100 * level, 8):.10g}%"


# Small-study tests need this many trials (Sterne et al. 2011); a funnel plot draws a modality from this many.
MIN_TRIALS = 10
FUNNEL_MIN_TRIALS = 3
NOT_ASSESSED = "not assessed: fewer than 10 trials"
