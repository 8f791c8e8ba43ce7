"""Per-trial intervals and the transforms pooling uses, against R and the commentary's printed figures."""

import numpy as np
import pandas as pd
import pytest
from conftest import FIXTURES
from metaprop.stats.proportions import (
    back_transform,
    clopper_pearson,
    freeman_tukey,
    harmonic_mean,
    inverse_freeman_tukey,
    logit_effects,
    proportion_ci,
)


@pytest.mark.parametrize(
    ("events", "n", "printed"),
    [(14, 20, "45.7%-88.1%"), (25, 36, "52%-84%"), (81, 189, "36%-50%")],
)
def test_commentary_intervals_to_the_printed_digit(events, n, printed):
    low, high = clopper_pearson(events, n)
    digits = len(printed.split("-")[0].rstrip("%").split(".")[1]) if "." in printed else 0
    assert f"{100 * low:.{digits}f}%-{100 * high:.{digits}f}%" == printed


def test_clopper_pearson_exact_values():
    low, high = clopper_pearson(14, 20)
    assert low == pytest.approx(0.457210817723711, rel=1e-12)
    assert high == pytest.approx(0.881068409594272, rel=1e-12)


R_METHODS = {m: m for m in ("clopper-pearson", "wilson", "jeffreys", "agresti-coull", "wald")}


@pytest.mark.parametrize("method", sorted(R_METHODS))
def test_intervals_match_r(method):
    ref = pd.read_csv(FIXTURES / "r_binom_ci.tsv", sep="\t", comment="#")
    ref = ref[ref["method"] == R_METHODS[method]]
    low, high = proportion_ci(ref["events"], ref["n"], method)
    np.testing.assert_allclose(low, ref["ci_low"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(high, ref["ci_high"], rtol=1e-9, atol=1e-12)


def test_zero_and_all_events_intervals_touch_the_bounds():
    low, high = clopper_pearson([0, 10], [10, 10])
    assert low[0] == 0 and high[1] == 1
    assert high[0] == pytest.approx(1 - 0.025 ** (1 / 10))


def test_logit_adds_half_only_to_studies_with_a_zero_cell():
    y, v = logit_effects([0, 5, 10], [10, 10, 10])
    assert y[0] == pytest.approx(np.log(0.5 / 10.5))
    assert v[0] == pytest.approx(1 / 0.5 + 1 / 10.5)
    assert y[1] == 0 and v[1] == pytest.approx(0.4)
    assert y[2] == pytest.approx(np.log(10.5 / 0.5))


def test_freeman_tukey_round_trip_and_metafor_scale():
    y, v = freeman_tukey(7, 20)
    assert y == pytest.approx(0.5 * (np.arcsin(np.sqrt(7 / 21)) + np.arcsin(np.sqrt(8 / 21))))
    assert v == pytest.approx(1 / 82)
    # Miller's inverse recovers the proportion closely for a single study's own n
    assert inverse_freeman_tukey(y, 20) == pytest.approx(0.35, abs=2e-3)
    assert inverse_freeman_tukey(freeman_tukey(0, 20)[0] - 0.01, 20) == 0.0
    assert inverse_freeman_tukey(freeman_tukey(20, 20)[0] + 0.01, 20) == 1.0


def test_harmonic_mean_and_back_transform():
    assert harmonic_mean([10, 40]) == pytest.approx(16.0)
    assert back_transform(0.0, "logit") == 0.5


@pytest.mark.parametrize(("ours", "theirs"), [("clopper-pearson", "beta"), ("jeffreys", "jeffreys")])
@pytest.mark.parametrize("level", [0.95, 0.9, 0.99, 0.9512345])
def test_beta_intervals_are_statsmodels_bit_for_bit(ours, theirs, level):
    from statsmodels.stats.proportion import proportion_confint

    n = np.concatenate([np.full(k + 1, k) for k in range(1, 120)])
    events = np.concatenate([np.arange(k + 1) for k in range(1, 120)])
    low, high = proportion_ci(events, n, ours, level)
    ref_low, ref_high = proportion_confint(events, n, alpha=1 - level, method=theirs)
    if ours == "jeffreys":  # ours touches 0 and 1 at 0 and n events (Brown, Cai & DasGupta 2001)
        ref_low, ref_high = np.where(events == 0, 0.0, ref_low), np.where(events == n, 1.0, ref_high)
    # the same scipy quantile functions on the same arguments: equal to the last bit
    np.testing.assert_array_equal(low, np.clip(ref_low, 0, 1))
    np.testing.assert_array_equal(high, np.clip(ref_high, 0, 1))
