"""Statistics against independent computations on fixed data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binomtest
from sklearn.metrics import brier_score_loss, f1_score
from sklearn.metrics import log_loss as sk_log_loss

from sentibench.report import stats


@pytest.mark.parametrize("k,n", [(0, 10), (3, 10), (9_200, 10_000), (287, 300), (300, 300)])
def test_wilson_interval_matches_scipy(k, n):
    expected = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert stats.wilson_interval(k, n) == pytest.approx((expected.low, expected.high),
                                                        abs=1e-9)


def test_wilson_half_width_on_the_reference_test_split_is_about_half_a_point():
    low, high = stats.wilson_interval(9_188, 10_000)  # GPT-2's 91.88 %
    assert 0.0050 < (high - low) / 2 < 0.0056


def test_mcnemar_is_the_exact_binomial_test_of_the_discordant_rows():
    a = np.array([1] * 50 + [1] * 1 + [0] * 9 + [0] * 40, bool)  # 1 row only a, 9 only b
    b = np.array([1] * 50 + [0] * 1 + [1] * 9 + [0] * 40, bool)
    assert stats.mcnemar_exact(a, b) == pytest.approx(2 * (1 + 10) / 2**10)  # by hand
    assert stats.mcnemar_exact(a, b) == pytest.approx(binomtest(1, 10, 0.5).pvalue)
    assert stats.mcnemar_exact(a, a) == 1.0


def test_holm_on_a_hand_worked_case():
    # sorted: 0.005 x4 = 0.02; 0.01 x3 = 0.03; 0.03 x2 = 0.06; 0.04 x1 -> max(0.06, 0.04)
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_macro_f1_matches_scikit_learn_and_its_bootstrap_is_seeded():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 400)
    p = np.where(rng.random(400) < 0.7, y, rng.integers(0, 3, 400))
    assert stats.macro_f1(y, p, 3) == pytest.approx(f1_score(y, p, average="macro"))
    first = stats.bootstrap_macro_f1(y, p, 3, seed=5)
    assert first == stats.bootstrap_macro_f1(y, p, 3, seed=5)
    assert first != stats.bootstrap_macro_f1(y, p, 3, seed=6)
    assert first[0] < stats.macro_f1(y, p, 3) < first[1]


def test_paired_bootstrap_interval_of_the_accuracy_difference():
    a = np.array([True] * 90 + [False] * 10)
    b = np.array([True] * 80 + [False] * 20)
    low, high = stats.paired_bootstrap_difference(a, b, seed=1)
    assert low <= 0.10 <= high and low > 0  # b is never right where a is wrong
    assert (low, high) == stats.paired_bootstrap_difference(a, b, seed=1)


def test_calibration_by_hand():
    y = np.array([0, 1, 1, 0])
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.55, 0.45]])
    assert stats.log_loss(y, probs) == pytest.approx(sk_log_loss(y, probs))
    hand_brier = np.mean([0.01 + 0.01, 0.04 + 0.04, 0.36 + 0.36, 0.2025 + 0.2025])
    assert stats.brier(y, probs) == pytest.approx(hand_brier)
    assert stats.brier(y, probs) == pytest.approx(2 * brier_score_loss(y, probs[:, 1]))
    # confidences 0.9, 0.8, 0.6, 0.55 in 15 bins: bins 13, 12, 9, 8, right, right, wrong, right
    hand_ece = (abs(1 - 0.9) + abs(1 - 0.8) + abs(0 - 0.6) + abs(1 - 0.55)) / 4
    assert stats.expected_calibration_error(y, probs) == pytest.approx(hand_ece)
    two_in_one_bin = np.array([[0.91, 0.09], [0.92, 0.08]])
    assert stats.expected_calibration_error([0, 1], two_in_one_bin) == pytest.approx(
        abs(0.5 - 0.915))
    assert math.isclose(sum(c for _, _, c in stats.reliability(y, probs)), 4)
