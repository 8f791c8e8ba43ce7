"""One outcome's meta-analysis: every method for every subgroup and overall, and the subgroup tests."""

import numpy as np
import pandas as pd
from scipy import special

from metaprop.analysis.extraction import studies_table
from metaprop.spec import METHODS as REGISTRY
from metaprop.spec import (
    UNKNOWN,
    column_title,
    comparison_pairs,
    in_sentence,
    method,
    prob_column,
    settings_of,
    subgroups_of,
)
from metaprop.stats import bayes as bayesian
from metaprop.stats.glmm import (
    glmm_common_regression,
    glmm_regression,
    leave_one_out_glmm,
    pool_glmm_common,
    pool_glmm_many,
)
from metaprop.stats.pooling import (
    leave_one_out_inverse_variance,
    meta_regression,
    pool_inverse_variance,
    q_between_subgroups,
)
from metaprop.stats.proportions import back_transform, freeman_tukey, harmonic_mean, logit_effects

METHODS = tuple(REGISTRY)
POOLED_COLUMNS = [
    "outcome", "subgroup", "method", "k", "events", "n", "estimate", "ci_low", "ci_high", "pi_low", "pi_high",
    "tau2", "tau2_ci_low", "tau2_ci_high", "i2", "i2_ci_low", "i2_ci_high", "q", "q_df", "q_p",
    "h2", "scale", "estimate_model", "se_model", "loglik", "loglik_marginal", "note",
]
TEST_COLUMNS = [
    "outcome", "method", "test", "statistic", "df", "p", "df2", "contrast", "lor", "lor_se", "lor_ci_low",
    "lor_ci_high", "or", "or_ci_low", "or_ci_high", "diff_median", "diff_ci_low", "diff_ci_high", "note",
    "group_1", "group_2",
]
_BACK_TRANSFORMED = ("estimate", "ci_low", "ci_high", "pi_low", "pi_high")
LOO_SERIES_MIN_K = 200  # from here leave-one-out of inverse-variance methods uses the O(k) series
_BATCH_CELLS = 2_000_000  # studies x sets in one vectorised inverse-variance call, which bounds memory


def method_scale(token):
    """The scale a method pools on: 'logit' or 'ft'."""
    return method(token).scale


def study_effects(events, n, token):
    """Per-study effects and variances on the method's scale."""
    return freeman_tukey(events, n) if method_scale(token) == "ft" else logit_effects(events, n)


def pool(events, n, method, level=0.95, nagq=7):
    """Pool one set of studies with one method; dict with model-scale and proportion-scale results."""
    return pool_many([(events, n)], method, level, nagq)[0]


def pool_many(datasets, token, level=0.95, nagq=7, tau2_ci=True, bayes=None):
    """pool() for many (events, n) sets; GLMM sets are fitted together in one batch, the others in vectorised
    calls (sets padded with NaN to the largest, at most `_BATCH_CELLS` cells a call). tau2_ci=False skips the
    Q-profile intervals of tau^2 and I^2. `bayes`: the config's bayes block (priors) for method 'bayes'."""
    datasets = [(np.asarray(e, dtype=float), np.asarray(n, dtype=float)) for e, n in datasets]
    spec = method(token)
    if spec.family == "bayes":
        fits = [bayesian.pool_bayes(events, n, bayes, level) for events, n in datasets]
    elif spec.family == "glmm" and spec.common:
        fits = [pool_glmm_common(events, n, level) for events, n in datasets]
    elif spec.family == "glmm":
        fits = pool_glmm_many(datasets, nagq=nagq, level=level)
    else:
        k = max(len(events) for events, _ in datasets)
        fits = []
        for start in range(0, len(datasets), max(1, _BATCH_CELLS // k)):
            part = datasets[start:start + max(1, _BATCH_CELLS // k)]
            y, v = np.full((len(part), k), np.nan), np.full((len(part), k), np.nan)
            for row, (events, n) in enumerate(part):
                y[row, :len(events)], v[row, :len(events)] = study_effects(events, n, token)
            batch = pool_inverse_variance(y, v, spec.tau2, hksj=spec.hksj, level=level, tau2_ci=tau2_ci)
            fits += [{key: value[row] for key, value in batch.items()} for row in range(len(part))]
        for res, (events, _) in zip(fits, datasets):
            res["note"] = ("one study: no between-study variance" if len(events) == 1 else
                           "common-effect model: tau^2 = 0 by definition" if spec.common else "")
    return [_finish(res, events, n, token) for res, (events, n) in zip(fits, datasets)]


def _finish(res, events, n, method):
    """A pooled result with its notes, on both scales."""
    if method_scale(method) == "ft" and len(events) > 1:
        res["note"] = _freeman_tukey_note(harmonic_mean(n), n.min(), n.max())
    scale = method_scale(method)
    out = {key: float(value) if not isinstance(value, str) else value for key, value in res.items()}
    out.setdefault("loglik", float("nan"))
    out.setdefault("loglik_marginal", float("nan"))
    out["scale"] = scale
    out["estimate_model"], out["se_model"] = out["estimate"], out["se"]
    n_hm = harmonic_mean(n)
    for key in _BACK_TRANSFORMED:
        out[key] = float(back_transform(out[key], scale, n_hm))
    out["events"], out["n"] = int(events.sum()), int(n.sum())
    return out


def _freeman_tukey_note(n_hm, smallest, largest):
    return (f"Freeman-Tukey back-transformed at the harmonic mean n = {n_hm:.1f} (trial sizes {smallest:.0f}-"
            f"{largest:.0f}); it can mislead (Schwarzer et al. 2019), a sensitivity check only")


def study_weights(events, n, method, tau2):
    """Each study's share of the inverse-variance weight 1 / (v_i + tau^2); for the GLMM an approximation."""
    _, v = study_effects(events, n, method)
    w = 1 / (np.asarray(v) + (0.0 if np.isnan(tau2) else tau2))
    return w / w.sum()


WEIGHT_COLUMNS = ["outcome", "subgroup", "method", "study", "weight"]


def forest_weights(studies, pooled, outcome, column="modality"):
    """Each kept study's share of its subgroup's weight, per method of `pooled` (study_weights at the subgroup's
    tau^2): the forest plots' Weight column, computed where the pooling is, so the figures job only draws. For the
    GLMM, which defines no study weights (metafor refuses weights() for rma.glmm), this is the inverse-variance
    approximation 1/(v_i + tau^2) on the logit scale, and the forest plot does not show it."""
    kept = studies[(studies["outcome"] == outcome) & studies["included"]]
    rows = pooled[pooled["outcome"] == outcome].set_index(["subgroup", "method"])["tau2"]
    parts = [(group, kept[kept[column] == group]) for group in subgroups_of(kept, column)]
    parts = [(group, part["events"].to_numpy(float), part["n"].to_numpy(float), part["study"].to_numpy())
             for group, part in parts]
    pieces = []
    for token in dict.fromkeys(pooled.loc[pooled["outcome"] == outcome, "method"]):
        for group, events, n, study in parts:
            weight = study_weights(events, n, token, rows[(group, token)])
            pieces.append(pd.DataFrame({"outcome": outcome, "subgroup": group, "method": token, "study": study,
                                        "weight": weight}))
    return pd.concat(pieces, ignore_index=True) if pieces else pd.DataFrame(columns=WEIGHT_COLUMNS)


def pool_outcome(studies, outcome, methods=METHODS, level=0.95, nagq=7, bayes=None, comparison=None,
                 column="modality"):
    """Pooled rows (every method x every subgroup and overall) and subgroup-difference tests for one outcome.

    `studies` is the studies table; only its included rows of `outcome` are pooled, grouped by `column`.
    `comparison`: the groups in the order every contrast reads (first vs second); unset, their order of first
    appearance. `bayes`: the config's bayes block (priors, deltas) for method 'bayes', whose test is
    `bayes-difference` per pair of groups.
    """
    kept = studies[(studies["outcome"] == outcome) & studies["included"]]
    if kept.empty:
        raise ValueError(f"no usable study for outcome '{outcome}': every row is excluded (see studies.tsv)")
    names = subgroups_of(kept, column)
    order = [g for g in (comparison or names) if g in names] + [g for g in names if g not in (comparison or names)]
    groups = [(g, kept[kept[column] == g]) for g in names] + [("overall", kept)]
    pooled, tests = [], []
    for token in methods:
        if method(token).family == "bayes":
            rows, bayes_tests = bayes_outcome(groups, outcome, level, bayes, order)
            pooled += rows
            tests += bayes_tests
            continue
        fits = pool_many([(part["events"].to_numpy(float), part["n"].to_numpy(float)) for _, part in groups], token,
                         level, nagq)
        rows = [{"outcome": outcome, "subgroup": name, "method": token, **res} for (name, _), res in zip(groups, fits)]
        pooled += rows
        tests.append(between_test(rows[:-1], outcome, token))
        tests += metareg_tests(kept, outcome, token, level, nagq, order, column)
        tests += rate_differences(rows[:-1], outcome, token, order, level)
    pooled = pd.DataFrame.from_records(pooled)
    pooled["k"] = pooled["k"].astype(int)
    pooled["q_df"] = pooled["q_df"].astype(int)
    columns = test_columns(bayes if "bayes" in methods else None)
    tests = pd.DataFrame.from_records(tests, columns=columns).astype({"df": "Int64", "df2": "Int64"})
    return pooled[POOLED_COLUMNS], tests


def test_columns(bayes=None):
    """Columns of subgroup_tests.tsv: with method bayes, one P(difference > delta) column per delta."""
    if bayes is None:
        return TEST_COLUMNS
    end = TEST_COLUMNS.index("note")
    return (TEST_COLUMNS[:end] + [prob_column(d) for d in settings_of(bayes)["deltas"]]
            + TEST_COLUMNS[end:])


def bayes_outcome(groups, outcome, level=0.95, bayes=None, order=None):
    """Method bayes for one outcome: pooled rows per group and overall (posteriors fitted once), and the
    bayes-difference rows for every pair of groups in the order of `order` (first minus second; overall
    excluded)."""
    settings = settings_of(bayes)
    posts, rows = {}, []
    for name, part in groups:
        events, n = part["events"].to_numpy(float), part["n"].to_numpy(float)
        posts[name] = bayesian.fit(events, n, settings)
        res = bayesian.pool_bayes(events, n, settings, level, post=posts[name])
        rows.append({"outcome": outcome, "subgroup": name, "method": "bayes", **_finish(res, events, n, "bayes")})
    base = {"outcome": outcome, "method": "bayes", "test": "bayes-difference", "note": ""}
    if len(groups) < 3:
        return rows, [{**base, "note": "one subgroup: nothing to compare"}]
    order = order or [name for name, _ in groups[:-1]]
    pairs, _ = bayesian.difference_rows({name: posts[name] for name in order}, settings["deltas"], level)
    note = ("difference of pooled rates (first minus second), independent posteriors per group; "
            + bayesian.describe_prior(settings["mu_sd"], settings["tau_prior"], settings["tau_scale"]))
    return rows, [{**base, **pair, "note": note} for pair in pairs]


def rate_differences(subgroup_rows, outcome, token, order, level=0.95):
    """'rate-difference' rows: per pair of `order`, the difference of the two pooled rates (first minus second), with
    a Wald interval from each rate's standard error by the delta method (SE of p = p (1 - p) SE of its logit; the
    groups pooled apart, so independent). Logit-scale methods only (no SE of a Freeman-Tukey back-transform)."""
    if method(token).scale != "logit":
        return []
    by_group = {r["subgroup"]: r for r in subgroup_rows}
    z = special.ndtri(1 - (1 - level) / 2)
    rows = []
    for a, b in comparison_pairs([g for g in order if g in by_group]):
        pa, pb = by_group[a]["estimate"], by_group[b]["estimate"]
        se = np.hypot(pa * (1 - pa) * by_group[a]["se_model"], pb * (1 - pb) * by_group[b]["se_model"])
        diff = pa - pb
        rows.append({"outcome": outcome, "method": token, "test": "rate-difference", "contrast": f"{a} minus {b}",
                     "group_1": a, "group_2": b, "diff_median": diff, "diff_ci_low": diff - z * se,
                     "diff_ci_high": diff + z * se, "note": "difference of pooled rates (delta method, Wald)"})
    return rows


def between_test(subgroup_rows, outcome, method):
    """Cochran's Q across the subgroup estimates of one method, on its model scale."""
    row = {"outcome": outcome, "method": method, "test": "between", "statistic": np.nan, "df": np.nan,
           "p": np.nan, "note": ""}
    usable = [r for r in subgroup_rows if np.isfinite(r["estimate_model"]) and r["se_model"] > 0]
    if len(subgroup_rows) < 2:
        row["note"] = "one subgroup: nothing to compare"
    elif len(usable) < len(subgroup_rows):
        missing = ", ".join(r["subgroup"] for r in subgroup_rows if r not in usable)
        row["note"] = f"no estimate with a standard error for: {missing}"
    else:
        q, df, p = q_between_subgroups([r["estimate_model"] for r in usable], [r["se_model"] for r in usable])
        row.update(statistic=q, df=df, p=p)
    return row


def metareg_tests(kept, outcome, token, level=0.95, nagq=7, order=None, column="modality"):
    """Meta-regression on the groups of `column` (the first group in order of appearance the reference) with a
    common tau^2: the omnibus test; with two groups the log odds ratio of the first of `order` against the second
    on the same row, with more one 'metareg-pair' row per pair (not on the Freeman-Tukey scale)."""
    groups = subgroups_of(kept, column)
    order = [g for g in (order or groups) if g in groups]
    row = {"outcome": outcome, "method": token, "test": "metareg", "note": ""}
    if len(groups) < 2:
        return [{**row, "note": "one subgroup: nothing to compare"}]
    if len(kept) <= len(groups):
        return [{**row, "note": f"{len(kept)} studies cannot fit {len(groups)} subgroup means and tau^2"}]
    X = np.column_stack([np.ones(len(kept))] + [(kept[column] == g).to_numpy(float) for g in groups[1:]])
    events, n, labels = kept["events"].to_numpy(float), kept["n"].to_numpy(float), kept[column].to_numpy()
    degenerate = [g for g in groups if _all_or_none(events[labels == g], n[labels == g])]
    spec = method(token)
    if spec.family == "glmm" and degenerate:
        return [{**row, "note": f"no finite maximum-likelihood estimate: every study of {', '.join(degenerate)} has "
                                "0 events or all events"}]
    if spec.family == "glmm":
        fit = glmm_common_regression(events, n, X, level) if spec.common else glmm_regression(events, n, X, nagq, level)
        if fit["diverged"]:
            return [{**row, "note": "no finite maximum-likelihood estimate: the fit diverges"}]
        if fit["boundary"]:
            row["note"] = "tau^2 estimated at the boundary 0"
    else:
        y, v = study_effects(events, n, token)
        fit = meta_regression(y, v, X, spec.tau2, spec.hksj, level)
    row.update({key: fit[key] for key in ("statistic", "df", "df2", "p")})
    if spec.scale != "logit":
        return [row]
    contrasts = modality_contrasts(fit["beta"][1:], fit["vcov"][1:, 1:], groups, order, fit["crit"])
    if len(groups) == 2:
        return [{**row, **contrasts[0]}]
    pairs = [{"outcome": outcome, "method": token, "test": "metareg-pair", "df": 1, "df2": fit["df2"],
              "note": row["note"], **c} for c in contrasts]
    for pair in pairs:  # the Wald test of one contrast: z^2 ~ chi2(1), or with HKSJ F(1, k - p) = t^2
        z2 = (pair["lor"] / pair["lor_se"]) ** 2
        pair["statistic"] = z2
        pair["p"] = float(special.fdtrc(1, fit["df2"], z2) if spec.hksj else special.chdtrc(1, z2))
    return [row, *pairs]


def modality_contrasts(coef, cov, groups, order, crit):
    """Log odds ratios, first vs second, of every pair of `order`, from the coefficients (and their covariance) of
    groups[1:] against the reference groups[0]: rows with contrast, group_1, group_2, lor, its SE and CI, OR."""
    index = {g: i for i, g in enumerate(groups[1:])}
    rows = []
    for a, b in comparison_pairs(order):
        c = np.zeros(len(coef))
        if a in index:
            c[index[a]] += 1.0
        if b in index:
            c[index[b]] -= 1.0
        lor, se = float(c @ coef), float(np.sqrt(c @ cov @ c))
        low, high = lor - crit * se, lor + crit * se
        rows.append({"contrast": f"{a} vs {b}", "group_1": a, "group_2": b, "lor": lor, "lor_se": se,
                     "lor_ci_low": low, "lor_ci_high": high,
                     "or": np.exp(lor), "or_ci_low": np.exp(low), "or_ci_high": np.exp(high)})
    return rows


def _all_or_none(events, n):
    """True when every study has 0 events, or every study has all events (the GLMM has no finite MLE)."""
    return bool((events == 0).all() or (events == n).all())


LOO_COLUMNS = [
    "outcome", "subgroup", "method", "omitted", "k", "events", "n", "estimate", "ci_low", "ci_high", "pi_low",
    "pi_high", "tau2", "i2", "q", "q_df", "q_p", "estimate_model", "se_model", "note",
]


def leave_one_out(studies, outcome, methods=METHODS, level=0.95, nagq=7):
    """Every method refitted without each study in turn, per subgroup and overall (subgroups of k >= 2)."""
    kept = studies[(studies["outcome"] == outcome) & studies["included"]]
    groups = [(g, kept[kept["modality"] == g]) for g in subgroups_of(kept)] + [("overall", kept)]
    pieces = []
    for token in methods:
        family = method(token).family
        if family == "bayes":  # not refitted per omitted study (a full integration each); see docs/methods.md
            continue
        for name, part in groups:
            if len(part) < 2:
                continue
            events, n = part["events"].to_numpy(float), part["n"].to_numpy(float)
            if family != "glmm" and len(part) >= LOO_SERIES_MIN_K:
                pieces.append(_leave_one_out_series(part, events, n, outcome, name, token, level))
                continue
            if family == "glmm" and method(token).common:  # one set at a time: all k held k^2 numbers (1.6 GB)
                fits = [pool_many([(np.delete(events, i), np.delete(n, i))], token, level)[0] for i in range(len(part))]
            elif family == "glmm":
                fits = [_finish(res, np.delete(events, i), np.delete(n, i), token)
                        for i, res in enumerate(leave_one_out_glmm(events, n, nagq, level))]
            else:
                fits = pool_many([(np.delete(events, i), np.delete(n, i)) for i in range(len(part))], token, level,
                                 nagq, tau2_ci=False)
            pieces.append(pd.DataFrame.from_records(
                [{"outcome": outcome, "subgroup": name, "method": token, "omitted": study, **res}
                 for study, res in zip(part["study"], fits)], columns=LOO_COLUMNS))
    table = pd.concat(pieces, ignore_index=True) if pieces else pd.DataFrame(columns=LOO_COLUMNS)
    return table.astype({"k": int, "q_df": int})


def _leave_one_out_series(part, events, n, outcome, name, token, level):
    """Leave-one-out rows of an inverse-variance method from leave_one_out_inverse_variance (O(k), the same fits
    as refitting each set to the iteration's tolerance), built as columns: k^2 refits at 10,000 trials took minutes."""
    y, v = study_effects(events, n, token)
    fit = leave_one_out_inverse_variance(y, v, method(token).tau2, method(token).hksj, level)
    k = len(events)
    n_rest = n.sum() - n
    n_hm = (k - 1) / ((1 / n).sum() - 1 / n)  # harmonic mean of each set without its study
    scale = method_scale(token)
    table = pd.DataFrame({"outcome": outcome, "subgroup": name, "method": token, "omitted": part["study"].to_numpy(),
                          "k": fit["k"].astype(int), "events": (events.sum() - events).astype(int),
                          "n": n_rest.astype(int)})
    for key in _BACK_TRANSFORMED:
        table[key] = back_transform(fit[key], scale, n_hm)
    for key in ("tau2", "i2", "q", "q_df", "q_p"):
        table[key] = fit[key]
    table["estimate_model"], table["se_model"] = fit["estimate"], fit["se"]
    if scale == "ft":  # _finish's note, with each set's own harmonic mean and size range
        low, high = _without_each(n, np.min), _without_each(n, np.max)
        table["note"] = [_freeman_tukey_note(*values) for values in zip(n_hm, low, high)]
    else:
        table["note"] = ""
    return table[LOO_COLUMNS]


def _without_each(values, reduce):
    """reduce (np.min or np.max) of `values` without each element in turn, in O(k)."""
    order = np.argsort(values if reduce is np.min else -values, kind="stable")
    first, second = values[order[0]], values[order[1]]
    out = np.full(len(values), first)
    out[order[0]] = second
    return out


def methods_comparison(pooled, tests, outcome):
    """All methods side by side for one outcome: one row per method, each subgroup's estimate and CI,
    tau^2 and I^2, and the subgroup tests."""
    rows = []
    part = pooled[pooled["outcome"] == outcome]
    for token in dict.fromkeys(part["method"]):
        row = {"outcome": outcome, "method": token, "description": method(token).label}
        for r in part[part["method"] == token].itertuples():
            row.update({f"{r.subgroup}_{c}": getattr(r, c) for c in ("k", "estimate", "ci_low", "ci_high", "tau2",
                                                                       "i2")})
        found = tests[(tests["outcome"] == outcome) & (tests["method"] == token)].set_index("test")
        for test in ("between", "metareg"):
            row[f"{test}_p"] = found.loc[test, "p"] if test in found.index else np.nan
        if "metareg" in found.index:
            row.update({c: found.loc["metareg", c] for c in ("contrast", "or", "or_ci_low", "or_ci_high")})
        notes = part[(part["method"] == token) & (part["subgroup"] == "overall")]["note"]
        row["warning"] = notes.iloc[0] if method_scale(token) == "ft" and len(notes) else ""
        if "metareg" in found.index:
            row.update({c: found.loc["metareg", c] for c in ("group_1", "group_2")})
        rows.append(row)
    return pd.DataFrame.from_records(rows)


def regroup(studies, outcome, by, where=None, within_modality=False):
    """The studies of `outcome` grouped by the moderator column `by`: `level` holds the moderator value and
    `group` the subgroup the row is pooled in (pool_outcome(..., column="group")); `modality` keeps its meaning.

    Rows are restricted to those matching `where` ({column: value}). Studies excluded from the outcome stay out;
    studies whose moderator is blank, 'Unknown' or 'Not reported' are listed as unknown (reason code
    'moderator_unknown'), never guessed. within_modality: the groups are the (modality, level) pairs, labelled
    'modality: level' (e.g. 'CAR-T: adult'), so no group mixes modalities.
    """
    where = where or {}
    table = studies[studies["outcome"] == outcome].copy()
    inside = np.ones(len(table), dtype=bool)
    for column, value in where.items():
        inside &= (table[column] == value).to_numpy()
    table = table[inside]
    value = table[by].fillna("").astype(str).str.strip()
    unknown = value.str.lower().isin(UNKNOWN)
    newly = table["included"] & unknown
    table["reason"] = np.where(newly, f"{in_sentence(column_title(by))} unknown", table["reason"])
    table["reason_code"] = np.where(newly, "moderator_unknown", table.get("reason_code", ""))
    table["included"] = table["included"] & ~unknown
    table["level"] = np.where(unknown, "unknown", value)
    if not within_modality:
        table["group"] = table["level"]
        return table
    pairs = list(zip(table["modality"].astype(str), table["level"]))
    labels = {pair: f"{pair[0]}: {pair[1]}" for pair in dict.fromkeys(pairs)}
    seen = {}
    for pair, label in labels.items():
        if seen.setdefault(label, pair) != pair:  # ('A', 'b: c') and ('A: b', 'c') read alike: refused, not merged
            raise ValueError(f"subgroup analysis by {by}: modality '{seen[label][0]}' with {by} '{seen[label][1]}' "
                             f"and modality '{pair[0]}' with {by} '{pair[1]}' would both be labelled '{label}'; "
                             "rename one of the values")
    table["group"] = [labels[pair] for pair in pairs]
    return table


def moderator_analysis(studies, outcome, by, where=None, across=False, methods=METHODS, level=0.95, nagq=7):
    """(studies, pooled, tests) of `outcome` grouped by the moderator column `by` (regroup): the pooled rows carry
    `group` (= subgroup), `modality` (empty when a group pools across modalities, and for overall) and `level`."""
    studies = regroup(studies, outcome, by, where, within_modality=not across)
    if not studies["included"].any():  # nothing known to group by: empty tables, and the report says so
        return studies, *(studies.iloc[:0].reindex(columns=cols) for cols in
                          (POOLED_COLUMNS + ["group", "modality", "level"], TEST_COLUMNS))
    pooled, tests = pool_outcome(studies, outcome, methods, level, nagq, column="group")
    if not across:  # groups are modality x level: compare levels inside each modality only
        within = within_modality_tests(studies, outcome, methods, level, nagq)
        tests = tests.iloc[:0] if within is None else within.reindex(columns=tests.columns)
    kept = studies[studies["included"]].drop_duplicates("group").set_index("group")
    pooled["group"] = pooled["subgroup"]
    pooled["modality"] = pooled["group"].map(kept["modality"]).fillna("") if not across else ""
    pooled["level"] = pooled["group"].map(kept["level"]).fillna("")
    return studies, pooled, tests


def within_modality_tests(studies, outcome, methods, level=0.95, nagq=7):
    """Tests for subgroup differences inside each modality of a stratified moderator analysis (regroup with
    within_modality): tests 'between-within' and 'metareg-within', one per modality with two levels or more."""
    kept = studies[(studies["outcome"] == outcome) & studies["included"]]
    out = []
    for modality in dict.fromkeys(kept["modality"]):
        part = studies[studies["modality"] == modality]
        inside = part[(part["outcome"] == outcome) & part["included"]]
        if inside["group"].nunique() < 2:
            continue
        _, tests = pool_outcome(part, outcome, [m for m in methods if m != "bayes"], level, nagq, column="group")
        tests["test"] = tests["test"] + "-within"
        tests["note"] = [f"within {modality}" + (f"; {n}" if n else "") for n in tests["note"].fillna("")]
        out.append(tests)
    return pd.concat(out, ignore_index=True) if out else None


def overlap_sensitivity(trials, outcome, token, rules, level=0.95, nagq=7, bayes=None, comparison=None):
    """The primary analysis under each overlap rule: which cohorts are kept, and what they pool to. `outcome`: the
    spec.Outcome."""
    rows = []
    for rule in rules:
        try:
            studies = studies_table(trials, [outcome], None, rule, level)
        except ValueError as err:  # a rule that needs a year the tables lack
            rows.append({"overlap_rule": rule, "note": str(err)})
            continue
        pooled, tests = pool_outcome(studies, outcome.id, [token], level, nagq, bayes, comparison)
        between = tests[tests["test"] == "between"]["p"].iloc[0] if (tests["test"] == "between").any() else np.nan
        kept = studies[studies["included"]]
        for r in pooled.to_dict("records"):
            members = kept if r["subgroup"] == "overall" else kept[kept["modality"] == r["subgroup"]]
            rows.append({"overlap_rule": rule, **{c: r[c] for c in ("outcome", "subgroup", "method", "k", "events", "n",
                         "estimate", "ci_low", "ci_high", "tau2", "i2")}, "between_p": between,
                         "studies": "; ".join(members["study"]), "note": r["note"]})
    columns = ["overlap_rule", "outcome", "subgroup", "method", "k", "events", "n", "estimate", "ci_low", "ci_high",
               "tau2", "i2", "between_p", "studies", "note"]
    return pd.DataFrame.from_records(rows, columns=columns)


PRIOR_SENSITIVITY_COLUMNS = [
    "outcome", "tau_prior", "tau_scale", "mu_sd", "subgroup", "contrast", "k", "estimate", "ci_low", "ci_high",
    "pi_low", "pi_high", "tau2", "tau2_ci_low", "tau2_ci_high", "diff_median", "diff_ci_low", "diff_ci_high",
]


def prior_sensitivity(studies, outcome, bayes=None, level=0.95, comparison=None):
    """The bayes posterior of each modality (and overall) and of each difference (first minus second of
    `comparison`) under every prior of tau in `sensitivity_priors`: rows with `subgroup` for pooled rates, rows
    with `contrast` (and `group_1`, `group_2`) for differences."""
    settings = settings_of(bayes)
    kept = studies[(studies["outcome"] == outcome) & studies["included"]]
    groups = [(g, kept[kept["modality"] == g]) for g in subgroups_of(kept)] + [("overall", kept)]
    rows = []
    for prior in settings["sensitivity_priors"]:
        s = {**settings, **prior}
        head = {"outcome": outcome, "tau_prior": s["tau_prior"], "tau_scale": s["tau_scale"], "mu_sd": s["mu_sd"]}
        posts = {}
        for name, part in groups:
            events, n = part["events"].to_numpy(float), part["n"].to_numpy(float)
            try:
                posts[name] = bayesian.fit(events, n, s)
            except RuntimeError as err:  # one prior's failed integration is said in its row, not the job's end
                rows.append({**head, "subgroup": name, "k": len(events), "note": f"not computed: {err}"})
                continue
            res = _finish(bayesian.pool_bayes(events, n, s, level, post=posts[name]), events, n, "bayes")
            rows.append({**head, "subgroup": name, **{c: res[c] for c in PRIOR_SENSITIVITY_COLUMNS[6:15]}})
        if len(groups) > 2:
            order = [g for g in (comparison or [g for g, _ in groups[:-1]]) if g in posts]
            pairs, _ = bayesian.difference_rows({g: posts[g] for g in order}, s["deltas"], level)
            rows += [{**head, **pair} for pair in pairs]
    columns = PRIOR_SENSITIVITY_COLUMNS + [prob_column(d) for d in settings["deltas"]] + ["group_1", "group_2"]
    columns += ["note"] if any("note" in row for row in rows) else []  # only when a prior failed: same bytes otherwise
    return pd.DataFrame.from_records(rows, columns=columns).astype({"k": "Int64"})
