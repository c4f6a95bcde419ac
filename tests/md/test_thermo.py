import numpy as np
import pandas as pd

from mdxfer.md.thermo import blocking_stderr, concat_runs, summarize


def ar1(n, phi, rng):
    x = np.zeros(n)
    e = rng.normal(size=n)
    for i in range(1, n):
        x[i] = phi * x[i - 1] + e[i]
    return x


def test_blocking_matches_the_naive_error_for_white_noise():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 2.0, 4096)
    naive = x.std(ddof=1) / np.sqrt(len(x))
    assert 0.8 * naive < blocking_stderr(x) < 1.6 * naive


def test_blocking_sees_correlation():
    rng = np.random.default_rng(1)
    phi = 0.9
    x = ar1(8192, phi, rng)
    naive = x.std(ddof=1) / np.sqrt(len(x))
    # exact inflation for AR(1): sqrt((1 + phi) / (1 - phi)) = 4.36
    ratio = blocking_stderr(x) / naive
    assert 3.0 < ratio < 6.0


def test_concat_and_summarize_drop_repeated_rows_and_discard_start():
    a = pd.DataFrame({"Step": [0, 10, 20], "TotEng": [100.0, 1.0, 1.0], "Lz": [3.0, 3.0, 3.0]})
    b = pd.DataFrame({"Step": [20, 30, 40], "TotEng": [1.0, 1.0, 1.0], "Lz": [3.0, 3.0, 3.0]})
    series = concat_runs([a, b])
    assert list(series["Step"]) == [0, 10, 20, 30, 40]
    s = summarize(series, discard_fraction=0.2)
    assert s["n_samples"] == 4 and s["etotal"] == 1.0 and s["lz_A"] == 3.0


def test_correlated_stderr_matches_ar1_theory_and_is_not_below_blocking():
    from mdxfer.md.thermo import blocking_stderr, correlated_stderr

    rng = np.random.default_rng(5)
    phi, n = 0.95, 40_000
    e = rng.normal(size=n)
    x = np.empty(n)
    x[0] = e[0]
    for i in range(1, n):
        x[i] = phi * x[i - 1] + e[i]
    g = (1 + phi) / (1 - phi)
    exact = np.sqrt(g * (1 / (1 - phi**2)) / n)
    assert 0.75 * exact < correlated_stderr(x) < 1.4 * exact
    assert correlated_stderr(x) >= blocking_stderr(x)


def test_equilibration_start_and_drift_are_detected():
    from mdxfer.md.thermo import detect_start, half_drift

    rng = np.random.default_rng(1)
    t = np.arange(2000)
    x = 30.0 * np.exp(-t / 100.0) + rng.normal(size=2000)
    start = detect_start(x)
    assert 200 <= start <= 1000  # the transient is dropped, half is kept
    assert abs(half_drift(x[start:])) < 3
    assert half_drift(np.linspace(0, 5, 1000) + rng.normal(size=1000)) > 3
