"""The active-learning surrogate's spread, calibrated on out-of-fold predictions (real QM9 rows)."""

from __future__ import annotations

import numpy as np
import pytest

from mdxfer.al.surrogate import (
    SurrogateSettings,
    calibrated_members,
    compute_features,
    cross_validate,
    fit_ensemble,
    predict_rows,
    spread_scale,
)
from mdxfer.learn.data import qm9


@pytest.fixture(scope="module")
def measured():
    df = qm9.subset(60, seed=4)
    smiles = list(df.SMILES)
    table = compute_features(smiles, SurrogateSettings(features="morgan", members=8))
    return table, smiles, df.Polarizability_bohr3.to_numpy(float)


def test_cross_validation_fits_a_spread_scale(measured):
    table, smiles, y = measured
    cv = cross_validate(table, smiles, y, seed=0)
    scale = cv["spread_scale"]
    m, s = np.array(cv["oof_mean"]), np.array(cv["oof_std"])
    assert scale > 0 and scale != pytest.approx(1.0)
    assert np.sum((y - m) ** 2) / np.sum((scale * s) ** 2) == pytest.approx(
        1.0
    )  # pooled unit variance
    err = np.abs(y - m)
    assert cv["coverage_1sd"] == pytest.approx(np.mean(err <= s))
    assert cv["coverage_2sd_calibrated"] == pytest.approx(np.mean(err <= 2 * scale * s))
    assert spread_scale(y, m, np.zeros_like(m)) is None


def test_calibrated_members_keep_the_mean_and_scale_the_spread(measured):
    table, smiles, y = measured
    ens = fit_ensemble(table, smiles[:40], y[:40], seed=1)
    members = predict_rows(table, ens, table.rows(smiles[40:]))
    cal = calibrated_members(members, 2.5)
    assert np.allclose(cal.mean(0), members.mean(0))
    assert np.allclose(cal.std(0, ddof=1), 2.5 * members.std(0, ddof=1))
    assert calibrated_members(members, None) is members
