"""The active-learning loop: transfer on everything known, rank the pool, pick a diverse
batch, simulate it, record, repeat until the budget is spent.

Round 0 simulates ``n_initial`` molecules drawn at random from the pool (on top of any
measured molecules given in an ``initial`` table or already in the campaign database); with
``n_initial = 0`` the loop starts from those known molecules and round 0 is already an
acquisition round. Every later round:

1. refit the transferred ensemble (:mod:`mdxfer.al.surrogate`) on every measured molecule,
   each weighted by its measurement noise (stderr; unweighted when none is known), and
   cross-validate it (the model quality shown by ``mdxfer al status``);
2. predict the whole pool (mean, spread, each member), score it with the acquisition
   (:mod:`mdxfer.al.acquisition`) and pick a batch spread over chemical space
   (:mod:`mdxfer.al.diversity`);
3. write model, predictions and picks to the database in one transaction (state ``selected``);
4. ask the oracle (the MD campaign, or a table) for the picks, recording every answer as it
   comes; then close the round (state ``done``).

A killed loop resumes where it was: a ``selected`` round is not selected again, only its
pending picks are measured; a round that was never written is selected again from the same
seed. Stops after ``rounds`` acquisition rounds or ``budget`` simulations (round 0 included),
whichever comes first, or when the pool is exhausted.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from mdxfer.al.acquisition import DEFAULT_ACQUISITION, Acquisition
from mdxfer.al.diversity import Diversity, select_batch
from mdxfer.al.oracles import (
    CAMPAIGN_TARGETS,
    CampaignOracle,
    Measurement,
    Oracle,
    TableOracle,
    read_pool,
)
from mdxfer.al.state import ALState, LoopLock
from mdxfer.al.surrogate import (
    FeatureTable,
    SurrogateSettings,
    calibrated_members,
    compute_features,
    cross_validate,
    fit_ensemble,
    one_thread,
    predict_rows,
)
from mdxfer.campaign.spec import spec_from_dict
from mdxfer.db import now
from mdxfer.errors import ALError
from mdxfer.inputs import check_keys, read_toml, resolve_path
from mdxfer.validate import check_int, check_number, check_seed

Log = Callable[[str], None]

#: fewest measured molecules an acquisition round fits its model on
MIN_KNOWN = 3


@dataclass(frozen=True)
class LoopSettings:
    """Everything that decides which molecules the loop picks."""

    batch_size: int = 10
    rounds: int | None = 10
    budget: int | None = None
    n_initial: int = 10
    acquisition: Acquisition = field(default_factory=Acquisition)
    diversity: Diversity = field(default_factory=Diversity)
    surrogate: SurrogateSettings = field(
        default_factory=lambda: SurrogateSettings(features="morgan")
    )
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("batch_size", "n_initial"):
            v = getattr(self, name)
            if (
                isinstance(v, bool)
                or not isinstance(v, int)
                or v < (1 if name == "batch_size" else 0)
            ):
                raise ALError(
                    f"{name} must be an integer >= {1 if name == 'batch_size' else 0}, got {v!r}."
                )
        if self.rounds is None and self.budget is None:
            raise ALError(
                "Give the loop an end: rounds (acquisition rounds after the initial one) "
                "and/or budget (total simulations)."
            )
        for name in ("rounds", "budget"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                raise ALError(f"{name} must be an integer >= 0, got {v!r}.")

    def fingerprint(self) -> dict[str, Any]:
        """The settings that must not change when a loop resumes (rounds/budget may grow)."""
        d = asdict(self)
        d.pop("rounds")
        d.pop("budget")
        d["surrogate"].pop("model_dir", None)
        return d


def pool_digest(pool: Sequence[str]) -> str:
    h = hashlib.sha256()
    for s in sorted(pool):
        h.update(s.encode() + b"\n")
    return h.hexdigest()[:16]


@dataclass
class RoundInfo:
    """What one finished round reports to callbacks."""

    round: int
    picks: list[dict[str, Any]]
    n_measured: int
    best_value: float | None
    best_smiles: str | None
    cv: dict[str, Any] | None


class ActiveLearner:
    """One loop over ``pool`` (canonical SMILES) with ``oracle``, state in ``state``."""

    def __init__(
        self,
        pool: Sequence[str],
        oracle: Oracle,
        state: ALState,
        settings: LoopSettings,
        initial: Sequence[Measurement] = (),
        features: FeatureTable | None = None,
        log: Log | None = None,
        on_round: Callable[[RoundInfo], None] | None = None,
        cross_validate_rounds: bool = True,
    ):
        self.pool = list(dict.fromkeys(pool))
        if not self.pool:
            raise ALError("The pool is empty.")
        self.oracle, self.state, self.s = oracle, state, settings
        self.initial = list(initial)
        self.features = features
        self.log = log or (lambda msg: None)
        self.on_round = on_round
        self.cv_rounds = cross_validate_rounds
        self.pool_index = {s: i for i, s in enumerate(self.pool)}

    # ------------------------------------------------------------ set-up
    def _check_settings(self) -> None:
        fp = {
            "settings": self.s.fingerprint(),
            "pool": pool_digest(self.pool),
            "oracle": self.oracle.name,
        }
        old = self.state.meta("loop")
        if old is None:
            self.state.set_meta("loop", fp)
        elif old != fp:
            changed = sorted(k for k in set(old) | set(fp) if old.get(k) != fp.get(k))
            detail = []
            if "settings" in changed:
                o, n = old["settings"], fp["settings"]
                detail = [k for k in sorted(set(o) | set(n)) if o.get(k) != n.get(k)]
            raise ALError(
                "This database holds a loop with other settings ("
                + ", ".join(detail or changed)
                + " differ). Resume it with the settings it "
                "was started with (only rounds and budget may change), or use another database."
            )
        self.state.set_meta(
            "limits",
            {
                "rounds": self.s.rounds,
                "budget": self.s.budget,
                "batch_size": self.s.batch_size,
                "n_initial": self.s.n_initial,
            },
        )

    def _sync_known(self, run_pending: bool = True) -> None:
        if run_pending:  # the oracle's unfinished work (e.g. a campaign's pending candidates)
            self.oracle.run_pending(self.log)
        if self.initial:
            n = self.state.add_observations([asdict(m) for m in self.initial], "initial")
            if n:
                self.log(f"{n} measured molecule(s) from the initial table")
        known = self.oracle.known()
        if known:
            n = self.state.add_observations([asdict(m) for m in known], self.oracle.name)
            if n:
                self.log(f"{n} molecule(s) already measured by the {self.oracle.name}")

    def _ensure_features(self) -> None:
        if self.features is not None or not self.s.acquisition.needs_model:
            return
        extra = [
            o["smiles"]
            for o in self.state.observations("done")
            if o["smiles"] not in self.pool_index
        ]
        t0 = time.perf_counter()
        self.features = compute_features(self.pool + extra, self.s.surrogate, self.log)
        self.log(
            f"featurised {len(self.pool) + len(extra)} molecules in {time.perf_counter() - t0:.1f} s"
        )

    # ------------------------------------------------------------ bookkeeping
    def _spent(self) -> int:
        return sum(r["n_picks"] for r in self.state.rounds())

    def _best(self) -> tuple[float | None, str | None]:
        done = self.state.observations("done")
        if not done:
            return None, None
        sign = 1.0 if self.s.acquisition.maximize else -1.0
        b = max(done, key=lambda o: sign * o["value"])
        return b["value"], b["smiles"]

    def _available(self) -> np.ndarray:
        taken = {o["smiles"] for o in self.state.observations()}
        taken |= {p["smiles"] for p in self.state.picks()}
        return np.array([s not in taken for s in self.pool], dtype=bool)

    def _random_round(self, r: int) -> bool:
        """Round 0 picks at random, unless ``n_initial = 0``: then the loop starts from the
        molecules it already knows (an ``initial`` table, the campaign's finished results) and
        round 0 is an acquisition round like the others."""
        return (r == 0 and self.s.n_initial > 0) or not self.s.acquisition.needs_model

    def _next_size(self, r: int) -> int:
        if r == 0 and self.s.n_initial > 0:
            n = self.s.n_initial
        else:
            # `rounds` counts acquisition rounds: after a random round 0 they are 1..rounds;
            # with n_initial = 0 round 0 is the first of them
            last = self.s.rounds if self.s.n_initial > 0 else (self.s.rounds or 0) - 1
            if self.s.rounds is not None and r > last:
                return 0
            n = self.s.batch_size
        if self.s.budget is not None:
            n = min(n, self.s.budget - self._spent())
        return max(0, n)

    # ------------------------------------------------------------ one round
    def _select(self, r: int, size: int) -> None:
        started = now()
        rng = np.random.default_rng([self.s.seed, r])
        avail = self._available()
        size = int(min(size, avail.sum()))
        acq = self.s.acquisition
        if self._random_round(r):
            idx = rng.permutation(np.flatnonzero(avail))[:size]
            picks = [{"smiles": self.pool[i]} for i in idx]
            self.state.write_round(
                r,
                "initial" if r == 0 else acq.name,
                [],
                picks,
                None,
                None,
                None,
                None,
                0.0,
                0.0,
                started,
            )
            return
        t0 = time.perf_counter()
        train = self.state.observations("done")
        if len(train) < MIN_KNOWN:
            raise ALError(
                f"The model of round {r} would be fitted on {len(train)} measured "
                f"molecule(s); it needs at least {MIN_KNOWN}. "
                + (
                    "With n_initial = 0 give the loop an [active_learning] initial table (or a "
                    "campaign with finished results), or set n_initial to draw a random first "
                    "round."
                    if self.s.n_initial == 0
                    else f"Round 0 measured fewer (n_initial = {self.s.n_initial}, failures "
                    f"count): raise n_initial to at least {MIN_KNOWN}, or add an initial table."
                )
            )
        smiles = [o["smiles"] for o in train]
        y = np.array([o["value"] for o in train], dtype=float)
        stderr = [o.get("stderr") for o in train]  # the noise of each measurement (None: unknown)
        table = self.features
        ens = fit_ensemble(table, smiles, y, seed=int(rng.integers(1 << 31)), stderr=stderr)
        cv = (
            cross_validate(table, smiles, y, seed=self.s.seed + r, stderr=stderr)
            if self.cv_rounds
            else None
        )
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        rows = table.rows(self.pool)
        # the spread calibrated on this round's out-of-fold predictions (when cross-validated)
        members = calibrated_members(
            predict_rows(table, ens, rows), cv.get("spread_scale") if cv else None
        )
        mean, std = members.mean(0), members.std(0, ddof=1)
        best, _ = self._best()
        score_rows, drawn = acq.batch_scores(mean, std, members, size, rng, best)
        chosen = select_batch(
            score_rows,
            size,
            self.s.diversity,
            fps=table.fps[rows],
            embedding=table.embedding[rows] if table.embedding is not None else table.X[rows],
            available=avail,
            seed=int(rng.integers(1 << 31)),
        )
        picks = []
        for j, i in enumerate(chosen):
            row = score_rows[min(j, len(score_rows) - 1)]
            picks.append(
                {
                    "smiles": self.pool[i],
                    "mean": float(mean[i]),
                    "std": float(std[i]),
                    "score": float(row[i]) if np.isfinite(row[i]) else None,
                    "member": None if drawn is None else int(drawn[j]),
                }
            )
        domain = [table.domain[i] for i in rows]
        preds = [
            (
                self.pool[k],
                float(mean[k]),
                float(std[k]),
                float(score_rows[0][k]) if np.isfinite(score_rows[0][k]) else None,
                None if domain[k] is None else int(domain[k] == ""),
            )
            for k in range(len(self.pool))
        ]
        select_s = time.perf_counter() - t0
        info = {
            "kind": ens.kind,
            "members": len(members),
            "features": table.settings.features,
            "columns": int(table.X.shape[1]),
            **ens.info,
        }
        self.state.write_round(
            r, acq.name, smiles, picks, preds, cv, ens.to_bytes(), info, fit_s, select_s, started
        )
        if cv and cv.get("folds"):
            self.log(
                f"round {r}: model on {len(y)} molecules, cross-validated R² {cv['r2']:.3f}, "
                f"Spearman {cv['spearman']:.3f}, MAE {cv['mae']:.3g}"
            )

    def _measure(self, r: int) -> None:
        pending = self.state.picks(r, status="pending")
        if pending:
            t0 = time.perf_counter()
            say = None if self.oracle.name == "table" else self.log
            recorded: set[str] = set()

            def record(m: Measurement) -> None:
                self.state.record_measurement(r, asdict(m))
                recorded.add(m.smiles)

            answers = self.oracle.measure([p["smiles"] for p in pending], say, record)
            for m in answers:
                if m.smiles not in recorded:
                    record(m)
            self.state.add_oracle_time(r, time.perf_counter() - t0)
        n_measured = len(self.state.picks(status="done")) + len(self.state.picks(status="failed"))
        best, best_smiles = self._best()
        self.state.finish_round(r, n_measured, best, best_smiles, 0.0)
        picks = self.state.picks(r)
        nf = sum(p["status"] == "failed" for p in picks)
        self.log(
            f"round {r}: {len(picks)} simulated ({nf} failed); {n_measured} simulations so far; "
            f"best {best if best is None else f'{best:.4g}'} ({best_smiles})"
        )
        if self.on_round:
            row = self.state.round_row(r)
            self.on_round(
                RoundInfo(
                    r,
                    picks,
                    n_measured,
                    best,
                    best_smiles,
                    json.loads(row["cv_json"]) if row and row["cv_json"] else None,
                )
            )

    # ------------------------------------------------------------ the loop
    def run(self, max_rounds: int | None = None, select_only: bool = False) -> dict[str, Any]:
        """Run (or resume) until the budget is spent. ``max_rounds``: stop after this many
        rounds in this call (for tests and step-by-step use). ``select_only``: choose the next
        round's molecules (or keep the pending choice) and stop before simulating them; the
        result's ``picks`` lists them, and the next ``run`` simulates them."""
        with one_thread():
            return self._run(max_rounds, select_only)

    def _run(self, max_rounds: int | None, select_only: bool = False) -> dict[str, Any]:
        self._check_settings()
        self._sync_known(run_pending=not select_only)  # --select-only simulates nothing
        self._ensure_features()
        if select_only:
            return self._select_next()
        done_now = 0
        while max_rounds is None or done_now < max_rounds:
            last = self.state.last_round()
            if last is not None and last["state"] == "selected":
                self.log(f"resuming round {last['round']}: measuring its pending picks")
                self._measure(last["round"])
                done_now += 1
                continue
            r = 0 if last is None else last["round"] + 1
            size = self._next_size(r)
            if r == 0 and size == 0:
                raise ALError(
                    f"Round 0 would simulate nothing (n_initial = {self.s.n_initial}, "
                    f"budget = {self.s.budget}), so the loop could never start: set "
                    "[active_learning] n_initial (or, when molecules are already known, "
                    "batch_size) and budget to at least 1."
                )
            if size == 0 or not self._available().any():
                break
            self._select(r, size)
            self._measure(r)
            done_now += 1
        best, best_smiles = self._best()
        rounds = self.state.rounds()
        return {
            "rounds": len(rounds),
            "simulations": self._spent(),
            "best_value": best,
            "best_smiles": best_smiles,
            "finished": self._finished(),
        }

    def _select_next(self) -> dict[str, Any]:
        """The next round's picks, chosen now unless a chosen round is still pending."""
        last = self.state.last_round()
        if last is None or last["state"] != "selected":
            r = 0 if last is None else last["round"] + 1
            size = self._next_size(r)
            if size > 0 and self._available().any():
                self._select(r, size)
                self.log(
                    f"round {r}: {len(self.state.picks(r))} molecule(s) chosen, not simulated "
                    "yet (run again without --select-only to simulate them)"
                )
        last = self.state.last_round()
        pending = last is not None and last["state"] == "selected"
        best, best_smiles = self._best()
        return {
            "rounds": len(self.state.rounds()),
            "simulations": self._spent(),
            "best_value": best,
            "best_smiles": best_smiles,
            "finished": self._finished(),
            "round": last["round"] if pending else None,
            "picks": self.state.picks(last["round"], status="pending") if pending else [],
        }

    def _finished(self) -> bool:
        last = self.state.last_round()
        if last is None or last["state"] != "done":
            return False
        return self._next_size(last["round"] + 1) == 0 or not self._available().any()


# --------------------------------------------------------------------------------------------
# the [active_learning] section of a campaign file
# --------------------------------------------------------------------------------------------

_AL_KEYS = {
    "pool",
    "initial",
    "n_initial",
    "batch_size",
    "rounds",
    "budget",
    "acquisition",
    "direction",
    "beta",
    "xi",
    "seed",
    "oracle",
    "table",
    "smiles_column",
    "target_column",
    "model_dir",
    "report",
    "model",
    "diversity",
    "cross_validate",
    "oracle_delay_s",
    "unit",
}
_MODEL_KEYS = {"kind", "features", "members", "cv_folds", "finetune_epochs", "finetune_patience"}
_DIV_KEYS = {"method", "shortlist", "threshold"}


@dataclass
class ALConfig:
    """A campaign file with an ``[active_learning]`` section, resolved."""

    path: Path
    spec: Any  # mdxfer.campaign.spec.CampaignSpec
    settings: LoopSettings
    pool_file: Path
    initial_file: Path | None
    oracle: str  # "campaign" | "table"
    table: Path | None
    smiles_column: str
    target_column: str
    report_dir: Path
    cross_validate: bool = True
    oracle_delay_s: float = 0.0  # table oracle only: seconds per answer (tests, demos)
    unit: str = ""  # the target's unit (axes and tables of the report)

    @property
    def label(self) -> str:
        """The target with its unit, for axes: ``E_int [kcal/mol]``, ``alpha [bohr^3]``."""
        return f"{self.target_column} [{self.unit}]" if self.unit else self.target_column

    @property
    def database(self) -> Path:
        return Path(self.spec.database)

    def make_oracle(self) -> Oracle:
        if self.oracle == "table":
            return TableOracle(
                self.table, self.smiles_column, self.target_column, delay_s=self.oracle_delay_s
            )
        return CampaignOracle(self.spec, self.target_column)

    def read_initial(self) -> list[Measurement]:
        if self.initial_file is None:
            return []
        t = TableOracle(self.initial_file, self.smiles_column, self.target_column)
        return [Measurement(s, "done", v, t.stderr.get(s)) for s, v in t.values.items()]


def _err(path: Path, msg: str) -> ALError:
    return ALError(f"campaign file {path}, [active_learning]: {msg}")


def _check(table: dict, allowed: set[str], section: str, path: Path) -> None:
    check_keys(table, allowed, section, f"campaign file {path}", ALError)


def load_al_config(path: str | Path) -> ALConfig:
    """Read a campaign TOML file with an ``[active_learning]`` section. The campaign part is
    validated by the campaign's own loader (:func:`mdxfer.campaign.spec.spec_from_dict`),
    which does not know this section: it is taken out before."""
    path, data = read_toml(
        path, "Campaign file", error=ALError, hint="see examples/al_campaign.toml"
    )
    al = data.pop("active_learning", None)
    if not isinstance(al, dict):
        raise ALError(
            f"Campaign file {path} has no [active_learning] section (see examples/al_campaign.toml)."
        )
    _check(al, _AL_KEYS, "active_learning", path)
    base = path.parent
    spec = spec_from_dict(data, base, path)

    if "pool" not in al:
        raise _err(path, 'pool = "FILE" is required (a .smi file, or a CSV with a smiles column).')
    pool_file = resolve_path(base, str(al["pool"]))
    direction = al.get("direction")
    if direction not in ("maximize", "minimize"):
        raise _err(
            path,
            'direction = "minimize" or "maximize" is required (E_int: "minimize", '
            "a more negative interaction energy is a stronger attraction).",
        )
    oracle = al.get("oracle", "campaign")
    if oracle not in ("campaign", "table"):
        raise _err(path, f'oracle must be "campaign" or "table", got {oracle!r}.')
    table = resolve_path(base, str(al["table"])) if "table" in al else None
    if oracle == "table" and table is None:
        raise _err(path, 'oracle = "table" needs table = "FILE.csv" (columns smiles,target).')
    target_col = str(al.get("target_column", "target" if oracle == "table" else "E_int"))
    if oracle == "campaign":
        if target_col not in CAMPAIGN_TARGETS:
            raise _err(
                path,
                f"target_column = {target_col!r}: the MD campaign measures "
                f"{' or '.join(map(repr, CAMPAIGN_TARGETS))}.",
            )

    model = dict(al.get("model", {}))
    _check(model, _MODEL_KEYS, "active_learning.model", path)
    div = dict(al.get("diversity", {}))
    _check(div, _DIV_KEYS, "active_learning.diversity", path)
    features = model.get("features", "embedding+morgan")
    model_dir = al.get("model_dir")
    if model_dir is not None:
        md = resolve_path(base, str(model_dir))
        if not md.exists() and (Path.cwd() / str(model_dir)).exists():
            md = Path.cwd() / str(model_dir)
        if not md.exists():
            raise _err(
                path,
                f"model_dir {model_dir!r} does not exist (looked in {base} and {Path.cwd()}); "
                "pretrain one with `mdxfer pretrain --out runs/cv`.",
            )
        model_dir = str(md)

    def integer(table: dict, key: str, default: int, lo: int, section: str = "") -> int:
        return check_int(table.get(key, default), f"{section}{key}", lo, error=ALError)

    def number(
        table: dict, key: str, default: float, lo=None, hi=None, lo_open=False, section: str = ""
    ) -> float:
        return check_number(
            table.get(key, default), f"{section}{key}", lo, hi, lo_open=lo_open, error=ALError
        )

    try:
        for key in ("acquisition", "smiles_column", "target_column", "unit"):
            if key in al and not isinstance(al[key], str):
                raise ALError(f"{key} must be a string, got {al[key]!r}.")
        if not isinstance(al.get("cross_validate", True), bool):
            raise ALError(f"cross_validate must be true or false, got {al['cross_validate']!r}.")
        surrogate = SurrogateSettings(
            model=model.get("kind", "ridge"),
            features=features,
            members=integer(model, "members", 16, 2, "model."),
            model_dir=model_dir,
            cv_folds=integer(model, "cv_folds", 5, 2, "model."),
            finetune_epochs=integer(model, "finetune_epochs", 2000, 1, "model."),
            finetune_patience=integer(model, "finetune_patience", 200, 1, "model."),
        )
        acq = Acquisition(
            str(al.get("acquisition", DEFAULT_ACQUISITION)),
            direction == "maximize",
            number(al, "beta", 1.0, 0),
            number(al, "xi", 0.0),
        )
        diversity = Diversity(
            str(div.get("method", "maxmin")),
            number(div, "shortlist", 1.5, 1, section="diversity."),
            number(div, "threshold", 0.6, 0, 1, lo_open=True, section="diversity."),
        )
        settings = LoopSettings(
            batch_size=al.get("batch_size", 10),
            rounds=al.get("rounds"),
            budget=al.get("budget"),
            n_initial=al.get("n_initial", 10),
            acquisition=acq,
            diversity=diversity,
            surrogate=surrogate,
            seed=check_seed(al.get("seed", 0), error=ALError),
        )
        delay = number(al, "oracle_delay_s", 0.0, 0)
    except ALError as exc:
        raise _err(path, str(exc)) from None
    except (TypeError, ValueError) as exc:
        raise _err(path, f"a value has the wrong type ({exc}).") from None
    report = resolve_path(base, str(al.get("report", f"{path.stem}-al-report")))
    return ALConfig(
        path,
        spec,
        settings,
        pool_file,
        resolve_path(base, str(al["initial"])) if "initial" in al else None,
        oracle,
        table,
        str(al.get("smiles_column", "smiles")),
        target_col,
        report,
        al.get("cross_validate", True),
        delay,
        str(al.get("unit", "" if oracle == "table" else "kcal/mol")),
    )


def loop_status(cfg: ALConfig) -> dict[str, Any]:
    """The loop's state for ``mdxfer al status``: rounds, picks and simulations by the loop
    (failed, pending), what was known before it, whether a loop runs now (read-only)."""
    with ALState(cfg.database, readonly=True) as state:
        rounds = state.rounds()
        limits = state.meta("limits") or {}
        picks = state.picks()
        obs = state.observations()
    return {
        "file": str(cfg.path),
        "database": str(cfg.database),
        "running": LoopLock.held(cfg.database),
        "direction": "maximize" if cfg.settings.acquisition.maximize else "minimize",
        "limits": limits,
        "rounds": rounds,
        "simulations": sum(p["status"] in ("done", "failed") for p in picks),
        "pending": sum(p["status"] == "pending" for p in picks),
        "failed": sum(p["status"] == "failed" for p in picks),
        "known_before_loop": sum(o["source"] != "oracle" for o in obs),
    }


def open_loop(
    cfg: ALConfig, log: Log | None = None, on_round=None
) -> tuple[ActiveLearner, ALState]:
    """The learner and its state for a resolved config (the caller closes the state)."""
    pool, _inputs, problems = read_pool(cfg.pool_file, cfg.smiles_column)
    for p in problems[:10]:
        (log or print)(f"skipped {p}")
    if len(pool) < cfg.settings.n_initial:
        raise ALError(
            f"The pool {cfg.pool_file} holds {len(pool)} usable molecule(s) "
            f"({len(problems)} skipped), fewer than [active_learning] n_initial = "
            f"{cfg.settings.n_initial} in {cfg.path}: add molecules or lower n_initial."
        )
    state = ALState(cfg.database, cfg.spec.sqlite_journal)
    learner = ActiveLearner(
        pool,
        cfg.make_oracle(),
        state,
        cfg.settings,
        cfg.read_initial(),
        log=log,
        on_round=on_round,
        cross_validate_rounds=cfg.cross_validate,
    )
    return learner, state
