"""The campaign file: a TOML file naming candidates, partner, protocol, profile and database.

Example (``mdxfer campaign init --out example.toml`` writes a commented one)::

    [campaign]
    name = "example"
    database = "example.db"        # relative to this file
    workdir = "example-runs"       # task directories and Parsl's run_dir, relative to this file
    partner = "CC(=C)C=C"          # isoprene

    [candidates]
    smiles = ["CCO", "CC(C)=O", "CCCC"]
    file = "candidates.smi"        # optional: .smi (SMILES [name] per line) or .csv (smiles,name)

    [protocol]
    preset = "quick"               # paper | quick | path of a protocol TOML
    nvt_ps = 2.0                   # any Protocol field overrides the preset

    [execution]
    profile = "local"              # local | slurm | slurm-local | slurm-mpi | pbs | pbs-mpi
    [execution.lammps]             # overrides of the profile's tables (see profiles.py)
    ranks = 1

    [retry]
    max_retries = 2
    retry_on = ["lost", "lammps"]

Relative paths are resolved against the directory of the campaign file, never the working
directory. Every error names the file and the key, and says what to write instead.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mdxfer.campaign.profiles import PROFILES, profile_toml, resolve_profile
from mdxfer.campaign.retry import PERMANENT, RETRYABLE, RetryPolicy
from mdxfer.errors import CampaignError, MdxferError, ProtocolError
from mdxfer.inputs import check_keys, read_molecules, read_toml, resolve_path
from mdxfer.md.protocol import DEFAULT_PARTNER, Protocol, load_protocol
from mdxfer.validate import check_int, check_line

# [active_learning] belongs to `mdxfer al` (mdxfer.al.loop); the campaign loader ignores it so
# that `mdxfer campaign status/export` work on an active-learning campaign file too.
_TOP_KEYS = {"campaign", "candidates", "protocol", "execution", "retry", "active_learning"}
_CAMPAIGN_KEYS = {"name", "database", "workdir", "partner", "sqlite_journal", "max_in_flight"}
_CANDIDATE_KEYS = {"smiles", "file"}
_RETRY_KEYS = {"max_retries", "retry_on"}
_EXECUTION_TABLES = {"executor", "provider", "lammps", "resources"}


@dataclass(frozen=True)
class Candidate:
    """One candidate as the user wrote it: SMILES and an optional name (never used in paths)."""

    smiles: str
    name: str = ""


@dataclass(frozen=True)
class CampaignSpec:
    """A validated campaign: everything :class:`mdxfer.campaign.runner.Campaign` needs."""

    name: str
    database: Path
    workdir: Path
    partner: str
    candidates: tuple[Candidate, ...]
    protocol: Protocol
    profile_name: str
    execution: dict[str, dict[str, Any]] = field(default_factory=dict)
    retry: RetryPolicy = RetryPolicy()
    sqlite_journal: str = "wal"
    max_in_flight: int | None = None
    path: Path | None = None

    @property
    def parsl_run_dir(self) -> Path:
        """Parsl's ``run_dir`` (logs, submit scripts): inside the campaign's work directory."""
        return self.workdir / "parsl"

    def replace(self, **changes: Any) -> CampaignSpec:
        return dataclasses.replace(self, **changes)


def _where(path: Path | None) -> str:
    return f"campaign file {path}" if path else "campaign"


def _check_keys(table: dict, allowed: set[str], section: str, path: Path | None) -> None:
    check_keys(table, allowed, section, _where(path), CampaignError)


def _str(value: Any, key: str, path: Path | None, allow_empty: bool = False) -> str:
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        raise CampaignError(f"{_where(path)}: {key} must be a non-empty string, got {value!r}.")
    return value.strip()


def read_candidates(path: Path) -> list[Candidate]:
    """Candidates from a ``.smi`` or ``.csv`` file (:func:`mdxfer.inputs.read_molecules`:
    ``SMILES [name]`` per line, ``#`` comments and a ``smiles`` header line skipped; or a CSV
    with ``smiles`` and optional ``name`` columns)."""
    return [
        Candidate(r.smiles, r.name)
        for r in read_molecules(
            path,
            what="Candidate file",
            error=CampaignError,
            hint="Call the SMILES column 'smiles' in the header line.",
        )
    ]


def _candidates(table: dict, base: Path, path: Path | None) -> tuple[Candidate, ...]:
    _check_keys(table, _CANDIDATE_KEYS, "candidates", path)
    out: list[Candidate] = []
    smiles = table.get("smiles", [])
    if isinstance(smiles, str):
        smiles = [smiles]
    if not isinstance(smiles, list):
        raise CampaignError(f"{_where(path)}: [candidates] smiles must be a list of strings.")
    for item in smiles:
        if isinstance(item, dict):  # {smiles = "...", name = "..."}
            _check_keys(item, {"smiles", "name"}, "candidates.smiles", path)
            out.append(
                Candidate(
                    _str(item.get("smiles"), "candidate smiles", path), str(item.get("name", ""))
                )
            )
        else:
            out.append(Candidate(_str(item, "candidate smiles", path)))
    if "file" in table:
        try:
            out.extend(
                read_candidates(resolve_path(base, _str(table["file"], "[candidates] file", path)))
            )
        except CampaignError as exc:
            raise CampaignError(f"{_where(path)}, [candidates] file: {exc}") from None
    return tuple(out)


def _protocol(table: dict, base: Path, path: Path | None) -> Protocol:
    table = dict(table)
    preset = table.pop("preset", "production")
    if not isinstance(preset, str):
        raise CampaignError(f"{_where(path)}: [protocol] preset must be a name or a path.")
    candidate_file = resolve_path(base, preset)
    name_or_path = str(candidate_file) if candidate_file.is_file() else preset
    try:
        return load_protocol(name_or_path, table)
    except ProtocolError as exc:
        raise CampaignError(f"{_where(path)}, [protocol]: {exc}") from exc


def _retry(table: dict, path: Path | None) -> RetryPolicy:
    _check_keys(table, _RETRY_KEYS, "retry", path)
    n = check_int(
        table.get("max_retries", RetryPolicy.max_retries),
        "[retry] max_retries",
        0,
        where=f"{_where(path)}: ",
        error=CampaignError,
    )
    on = table.get("retry_on", list(RetryPolicy.retry_on))
    if not isinstance(on, list) or any(x not in RETRYABLE for x in on):
        raise CampaignError(
            f"{_where(path)}: [retry] retry_on must be a list drawn from {list(RETRYABLE)} "
            f"(permanent failures {list(PERMANENT)} are never retried), got {on!r}."
        )
    return RetryPolicy(max_retries=n, retry_on=tuple(on))


def _execution(table: dict, path: Path | None) -> tuple[str, dict[str, dict[str, Any]]]:
    table = dict(table)
    profile = table.pop("profile", "local")
    if profile not in PROFILES:
        raise CampaignError(
            f"{_where(path)}: unknown profile {profile!r}; use one of {', '.join(PROFILES)}."
        )
    _check_keys(table, _EXECUTION_TABLES, "execution", path)
    for key, sub in table.items():
        if not isinstance(sub, dict):
            raise CampaignError(f"{_where(path)}: [execution.{key}] must be a table.")
    return profile, {k: dict(v) for k, v in table.items()}


def spec_from_dict(
    data: dict[str, Any], base_dir: str | Path, path: Path | None = None
) -> CampaignSpec:
    """Validate parsed TOML ``data``; relative paths are taken from ``base_dir``."""
    base = Path(base_dir).resolve()
    _check_keys(data, _TOP_KEYS, "top level", path)
    camp = data.get("campaign", {})
    _check_keys(camp, _CAMPAIGN_KEYS, "campaign", path)
    stem = path.stem if path else "campaign"
    name = check_line(
        camp.get("name", stem),
        "[campaign] name",
        where=f"{_where(path)}: ",
        error=CampaignError,
        allow_empty=False,
    )
    database = resolve_path(
        base, _str(camp.get("database", f"{stem}.db"), "[campaign] database", path)
    )
    workdir = resolve_path(
        base, _str(camp.get("workdir", f"{stem}-runs"), "[campaign] workdir", path)
    )
    partner = _str(camp.get("partner", DEFAULT_PARTNER), "[campaign] partner", path)
    journal = str(camp.get("sqlite_journal", "wal")).lower()
    if journal not in ("wal", "delete", "truncate"):
        raise CampaignError(
            f"{_where(path)}: [campaign] sqlite_journal must be 'wal' (default) "
            "or 'delete' (for databases on network file systems)."
        )
    max_in_flight = camp.get("max_in_flight")
    if max_in_flight is not None:
        check_int(
            max_in_flight,
            "[campaign] max_in_flight",
            1,
            where=f"{_where(path)}: ",
            error=CampaignError,
        )
    try:
        from mdxfer.molecule import check_md_supported

        check_md_supported(partner)  # a partner MD cannot simulate stops here, not in a task
    except MdxferError as exc:
        raise CampaignError(
            f"{_where(path)}: the partner is not a molecule mdxfer can simulate: {exc}"
        ) from None
    profile, execution = _execution(data.get("execution", {}), path)
    spec = CampaignSpec(
        name=name,
        database=database,
        workdir=workdir,
        partner=partner,
        candidates=_candidates(data.get("candidates", {}), base, path),
        protocol=_protocol(data.get("protocol", {}), base, path),
        profile_name=profile,
        execution=execution,
        retry=_retry(data.get("retry", {}), path),
        sqlite_journal=journal,
        max_in_flight=max_in_flight,
        path=path,
    )
    try:
        resolve_profile(spec)  # validate the profile now, not when the first task starts
    except CampaignError as exc:
        raise CampaignError(f"{_where(path)}: {exc}") from None
    return spec


def load_spec(path: str | Path) -> CampaignSpec:
    """Read and validate a campaign TOML file."""
    path, data = read_toml(
        path,
        "Campaign file",
        error=CampaignError,
        hint="write an example with `mdxfer campaign init --out FILE`",
    )
    return spec_from_dict(data, path.parent, path)


EXAMPLE = """\
# mdxfer campaign file: interaction energies of many candidates with one partner molecule.
# Run it:      mdxfer campaign run {file}
# Watch it:    mdxfer campaign status {file}
# Results:     mdxfer campaign export {file} --out results.csv
# Relative paths below are relative to this file's directory.

[campaign]
name = {name}
# SQLite (WAL): molecules, tasks, results with provenance
database = {database}
# one directory per task (named by InChIKey + hash), plus Parsl's logs in parsl/
workdir = {workdir}
partner = "{partner}"             # isoprene; simulated once per protocol, reused by every pair
# max_in_flight = 8               # candidates submitted at once (default: 2 x workers)
# sqlite_journal = "delete"       # if the database lives on NFS/Lustre (WAL needs a local disk)

[candidates]
# Inline SMILES, optionally with names: {{smiles = "CCO", name = "ethanol"}}
smiles = ["CCO", "CC(C)=O", "CCCC"]
# file = "candidates.smi"         # and/or a file: SMILES [name] per line, or a CSV (smiles,name)

[protocol]
preset = "quick"                  # "production" (the one to use) | "paper" (the seed) | "demo" | "quick" (tests)
                                  # | the path of a protocol TOML
# Any protocol field overrides the preset (units in the name: _ps, _A, _fs, _K, _atm):
# nvt_ps = 2.0
# n_molecules = 20

[execution]
# local | slurm | slurm-local | slurm-mpi | pbs | pbs-mpi
profile = "{profile}"
{execution}
[retry]
max_retries = 2                   # extra attempts of a failed stage
retry_on = ["lost", "lammps"]     # lost = worker/node/walltime lost; lammps = LAMMPS blew up
                                  # or died; "error" = anything unexpected. Bad SMILES,
                                  # unsupported elements and inputs LAMMPS refuses are never
                                  # retried.
"""


def write_example(out: str | Path, profile: str = "local", force: bool = False) -> Path:
    """Write the example campaign file (:func:`example_text`) to ``out`` (its folder created),
    refusing to overwrite an existing file unless ``force``; the file is checked by loading it."""
    out = Path(out)
    if out.exists() and not force:
        raise CampaignError(f"{out} exists; use --force to overwrite it.")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(example_text(out.stem, profile))
    load_spec(out)  # the example must be valid as written
    return out


def example_text(stem: str, profile: str = "local") -> str:
    """The commented example campaign file (``mdxfer campaign init``)."""
    if profile not in PROFILES:
        raise CampaignError(f"Unknown profile {profile!r}; use one of {', '.join(PROFILES)}.")
    check_line(stem, "The campaign file name", error=CampaignError)
    quote = lambda text: json.dumps(text, ensure_ascii=False)  # a valid TOML basic string
    return EXAMPLE.format(
        stem=stem,
        partner=DEFAULT_PARTNER,
        file=f"{stem}.toml",
        profile=profile,
        name=quote(stem),
        database=quote(f"{stem}.db"),
        workdir=quote(f"{stem}-runs"),
        execution=profile_toml(profile),
    )
