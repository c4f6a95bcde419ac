"""Gaussian-process regression (mdxfer.learn.gp) on real QM9 molecules."""

from __future__ import annotations

import numpy as np
import pytest

from mdxfer.learn.data import qm9
from mdxfer.learn.featurize import morgan_counts
from mdxfer.learn.gp import _neg_lml, fit_gp, pair_terms, self_terms, tanimoto


@pytest.fixture(scope="module")
def data():
    df = qm9.subset(240, seed=3)
    return list(df.SMILES), df.Polarizability_bohr3.to_numpy(float)


def test_tanimoto_on_counts_and_bits():
    a = np.array([[2, 1, 0, 0], [0, 0, 0, 0], [0, 0, 3, 0]], float)
    t = tanimoto(a, a)
    assert np.allclose(np.diag(t), 1.0)  # self-similarity 1, the zero row too
    assert t[0, 2] == 0.0  # no shared feature
    b = np.array([[1, 1, 0, 1]], float)  # <a0,b> = 3; |a0|² 5, |b|² 3 -> 3 / 5
    assert tanimoto(a[:1], b)[0, 0] == pytest.approx(3 / 5)
    bits = np.array([[1, 1, 0, 1], [1, 0, 1, 1]], float)  # Jaccard on bits: 2 / 4
    assert tanimoto(bits[:1], bits[1:])[0, 0] == pytest.approx(0.5)


def test_tanimoto_gram_of_qm9_fingerprints_is_positive_semidefinite(data):
    fp = morgan_counts(data[0][:150])
    lam = np.linalg.eigvalsh(tanimoto(fp, fp))
    assert lam.min() > -1e-8 and np.isclose(np.diag(tanimoto(fp, fp)), 1).all()


@pytest.mark.parametrize("kernel", ["tanimoto", "rbf"])
def test_fit_maximises_the_marginal_likelihood_and_predicts_held_out(data, kernel):
    smiles, y = data
    X = morgan_counts(smiles)
    if kernel == "rbf":  # a stand-in embedding: standardised counts of the 64 most common bits
        top = np.argsort(-X.sum(0))[:64]
        X = (X[:, top] - X[:, top].mean(0)) / (X[:, top].std() + 1e-12)
    perm = np.random.default_rng(0).permutation(len(y))
    tr, te = perm[:40], perm[40:]
    fit = fit_gp(kernel, pair_terms(kernel, X[tr], X[tr]), y[tr])
    # the optimum: moving the signal or noise variance away lowers the likelihood
    B = fit.similarity(pair_terms(kernel, X[tr], X[tr]))
    lam, U = np.linalg.eigh(B)
    ys = (y[tr] - y[tr].mean()) / y[tr].std()
    yt, ot = U.T @ ys, U.T @ np.ones(len(tr))
    best = np.log([fit.info["signal_rel"], fit.info["noise_rel"]])
    for step in ([0.3, 0], [-0.3, 0], [0, 0.3]):
        assert (
            _neg_lml(best, np.maximum(lam, 0), yt, ot)
            <= _neg_lml(best + step, np.maximum(lam, 0), yt, ot) + 1e-9
        )
    mean, var = fit.predict(pair_terms(kernel, X[te], X[tr]), self_terms(kernel, X[te]))
    r2 = 1 - np.sum((y[te] - mean) ** 2) / np.sum((y[te] - y[te].mean()) ** 2)
    assert r2 > 0.2 and np.all(var >= fit.noise)
    # its own variance is larger far from the training molecules than on them
    _, var_tr = fit.predict(pair_terms(kernel, X[tr], X[tr]), self_terms(kernel, X[tr]))
    assert var_tr.mean() < var.mean()


def test_fit_refuses_fewer_than_two_rows():
    with pytest.raises(ValueError, match="at least 2"):
        fit_gp("tanimoto", {"t": np.ones((1, 1)), "dot": np.ones((1, 1))}, np.array([1.0]))
    with pytest.raises(ValueError, match="unknown GP kernel"):
        pair_terms("linear", np.ones((2, 2)), np.ones((2, 2)))
