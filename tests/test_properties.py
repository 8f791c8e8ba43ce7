"""Properties every pooled result must have, on random data (hypothesis)."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from metaprop.analysis.meta_analysis import pool, pool_outcome
from metaprop.stats.pooling import pool_inverse_variance
from metaprop.stats.proportions import logit_effects

METHODS = ["logit-dl", "logit-reml", "logit-pm", "logit-reml-hksj", "ft-dl"]


@st.composite
def trials(draw, min_k=1, max_k=8):
    k = draw(st.integers(min_k, max_k))
    n = draw(st.lists(st.integers(1, 400), min_size=k, max_size=k))
    events = [draw(st.integers(0, size)) for size in n]
    return np.array(events, dtype=float), np.array(n, dtype=float)


@settings(max_examples=60, deadline=None)
@given(data=trials(min_k=2), method=st.sampled_from(METHODS), seed=st.integers(0, 2**16))
def test_order_of_trials_does_not_matter(data, method, seed):
    events, n = data
    order = np.random.default_rng(seed).permutation(len(n))
    first, second = pool(events, n, method), pool(events[order], n[order], method)
    for key in ("estimate", "ci_low", "ci_high", "tau2", "q", "i2"):
        np.testing.assert_allclose(first[key], second[key], rtol=1e-9, atol=1e-12, equal_nan=True)


@settings(max_examples=60, deadline=None)
@given(data=trials(), method=st.sampled_from(METHODS))
def test_every_interval_contains_its_estimate(data, method):
    res = pool(*data, method)
    assert res["ci_low"] <= res["estimate"] <= res["ci_high"]
    if not np.isnan(res["pi_low"]):
        assert res["pi_low"] <= res["ci_low"] and res["ci_high"] <= res["pi_high"]
    if method == "logit-pm" and not np.isnan(res["tau2"]):
        # Paule-Mandel solves Q = k - 1, which lies between the Q-profile quantiles (DL's need not)
        assert res["tau2_ci_low"] <= res["tau2"] <= res["tau2_ci_high"]


@settings(max_examples=40, deadline=None)
@given(data=trials(min_k=1, max_k=1), method=st.sampled_from(METHODS + ["glmm"]))
def test_one_trial_gives_that_trial_back(data, method):
    events, n = data
    res = pool(events, n, method)
    if method == "glmm" and events[0] in (0, n[0]):
        assert np.isnan(res["estimate"]) and res["note"]
        return
    if method.startswith("ft"):
        assert res["estimate"] == pytest.approx(events[0] / n[0], abs=0.02)  # Miller's inverse is approximate
    else:
        y, v = logit_effects(events, n)
        assert res["estimate_model"] == pytest.approx(y[0])
        assert res["se_model"] == pytest.approx(np.sqrt(v[0]))
    assert np.isnan(res["tau2"])


@settings(max_examples=25, deadline=None)
@given(a=trials(min_k=2, max_k=5), b=trials(min_k=2, max_k=5))
def test_relabelling_subgroups_relabels_rows_only(a, b):
    def frame(names):
        rows = [(f"{names[0]}{i}", names[0], e, n) for i, (e, n) in enumerate(zip(*a))]
        rows += [(f"{names[1]}{i}", names[1], e, n) for i, (e, n) in enumerate(zip(*b))]
        return pd.DataFrame(rows, columns=["study", "modality", "events", "n"]).assign(outcome="cr", included=True)

    methods = ["logit-reml", "ft-dl"]
    pooled1, tests1 = pool_outcome(frame(["A", "B"]), "cr", methods)
    pooled2, tests2 = pool_outcome(frame(["X", "Y"]), "cr", methods)
    assert list(pooled2["subgroup"]) == [{"A": "X", "B": "Y"}.get(g, g) for g in pooled1["subgroup"]]
    numbers = pooled1.select_dtypes("number").columns
    pd.testing.assert_frame_equal(pooled1[numbers], pooled2[numbers])
    labels = ["contrast", "group_1", "group_2"]
    pd.testing.assert_frame_equal(tests1.drop(columns=labels), tests2.drop(columns=labels))


def test_batch_equals_one_at_a_time():
    rng = np.random.default_rng(3)
    n = rng.integers(5, 200, size=(50, 12)).astype(float)
    events = rng.binomial(n.astype(int), rng.uniform(0.05, 0.95, size=(50, 1))).astype(float)
    y, v = logit_effects(events, n)
    y[::7, 9:] = np.nan  # ragged: some meta-analyses have fewer studies
    v[::7, 9:] = np.nan
    batch = pool_inverse_variance(y, v, "reml")
    for i in range(50):
        keep = ~np.isnan(y[i])
        single = pool_inverse_variance(y[i, keep], v[i, keep], "reml")
        for key in ("estimate", "se", "tau2", "tau2_ci_low", "tau2_ci_high", "q", "pi_low"):
            assert batch[key][i] == pytest.approx(single[key], rel=1e-12, abs=1e-14, nan_ok=True)


def test_skipping_the_q_profile_changes_nothing_else():
    y, v = logit_effects([3, 10, 25, 7], [20, 30, 40, 25])
    full, lean = pool_inverse_variance(y, v, "reml"), pool_inverse_variance(y, v, "reml", tau2_ci=False)
    assert np.isnan(lean["tau2_ci_low"]) and np.isnan(lean["i2_ci_high"])
    for key in ("estimate", "se", "ci_low", "ci_high", "pi_low", "tau2", "i2", "q"):
        assert lean[key] == full[key]
