"""Fuzz suite (issue 14, item 7): bad input over every command, and property tests.

1. :data:`CASES`: a hand-made list of bad or odd inputs for every command (SMILES read in part,
   NaN/inf/negative/huge/strings in options, ``--set``, campaign and AL files, output paths that
   are files, broken or binary files, odd environment variables). Each is run in-process
   (typer's ``CliRunner``) and must end in a non-zero exit, no traceback, one paragraph, and
   name the field (``fragment``). Nothing starts LAMMPS (``MDXFER_LMP=false``) and a case that
   is accepted and starts real work is stopped by an alarm and fails.
2. Hypothesis: random text as a SMILES is either refused with an :class:`MdxferError` or gives
   a canonical SMILES that round-trips (and ``mdxfer types`` never shows a traceback); bad
   numbers in protocol overrides, campaign and ``[active_learning]`` files are refused naming
   the field.

``python -m pytest -q tests/test_fuzz.py -s`` prints the number of inputs per command.
"""

from __future__ import annotations

import json
import math
import re
import signal
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from mdxfer.cli.main import app
from mdxfer.errors import MdxferError

ALARM_S = 60  # a bad input that is accepted and starts real work fails here
FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@dataclass
class Case:
    """One bad input: ``args`` (``{name}`` is replaced by the path of file ``name`` of
    ``files``, written in the case's own folder; ``{tmp}`` by that folder), the text the error
    must hold (case-insensitive, whitespace collapsed), and extra environment variables."""

    command: str
    args: list[str]
    fragment: str
    files: dict[str, str | bytes] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        text = " ".join(self.args) + (" " + " ".join(f"{k}={v}" for k, v in self.env.items()))
        return re.sub(r"[^\x21-\x7e]", "?", text)[:90]


# ------------------------------------------------------------------------------ shared inputs

BAD_SMILES = [
    ("CCÖ", "position 3"),
    ("CC O", "whitespace"),
    ("C\nC", "position 2"),
    ("CC\x00O", "control"),
    ("C1CC", "C1CC"),
    ("CC)", "CC)"),
    ("C(C", "C(C"),
    ("[Xx]", "[Xx]"),
    ("C%", "C%"),
    ("C[", "C["),
    ("c1ccccc", "c1ccccc"),
    ("c1cc1", "c1cc1"),
    ("c1ccnc1", "c1ccnc1"),
    ("CC=", "CC="),
    ("=C", "=C"),
    ("C(=O", "C(=O"),
    ("F/C=C/F/", "F/C=C/F/"),
    ("CCO\u200b", "position 4"),
    ("ＣＣＯ", "position 1"),
    ("", "empty"),
    ("   ", "empty"),
    ("C1CC1C1", "C1CC1C1"),
    ("[C@@@@@H]", "C@@@@@H"),
    ("C..C", "C..C"),
    ("((C))", "((C))"),
    ("[CH5]", "[CH5]"),
    ("C(C)(C)(C)(C)C", "C(C)(C)(C)(C)C"),
    ("[O-2]C", "[O-2]C"),
]
MD_REFUSED = [
    ("CCO.O", "fragments"),
    ("[CH3]", "radical"),
    ("[Na+].[Cl-]", "fragments"),
    ("[Fe]", "Fe"),
    ("C[Se]C", "Se"),
    ("*C", "*"),
    ("CC(=O)[O-]", "net charge"),
    ("[NH4+]", "net charge"),
    ("[He]", "He"),
    ("[U]", "U"),
]
FLOATS = ["nan", "inf", "-inf", "abc", "", "1e400", "1,5", "0x10", "--"]
INTS = ["abc", "1.5", "nan", "", "1e3", "inf", "0x10", "99999999999999999999999999"]
SEEDS = ["-1", "4294967296", "abc", "1.5", "nan"]
TEXT_MODEL = {"m/model.pt": "not a model\n" * 20}
TABLE = "smiles,target\n" + "".join(f"{'C' * k}O,{k * 1.5}\n" for k in range(1, 13))
SMI = "CCO ethanol\nCCC propane\nCC(C)O ipa\n"
BINARY = bytes(range(256)) * 8
NO_LAMMPS = '[execution]\nprofile = "local"\n[execution.lammps]\ncommand = "false"\n'


def campaign_toml(
    campaign: str = "",
    candidates: str = 'smiles = ["CCO"]',
    protocol: str = "",
    execution: str = NO_LAMMPS,
    rest: str = "",
    preset: str = "quick",
) -> str:
    """A campaign file; unless ``execution`` says otherwise, its LAMMPS is ``false`` (nothing
    is simulated should a bad value be accepted)."""
    return (
        f"[campaign]\n{campaign}\n[candidates]\n{candidates}\n"
        f'[protocol]\npreset = "{preset}"\n{protocol}\n{execution}\n{rest}\n'
    )


def al_toml(al: str = "", model: str = "", campaign: str = "") -> str:
    """An AL campaign file (table oracle); ``model`` lines replace the default model lines."""
    lines = {"features": 'features = "morgan"', "members": "members = 4"}
    for line in filter(None, model.splitlines()):
        lines[line.split("=")[0].strip()] = line
    return (
        f'[campaign]\ndatabase = "al.db"\n{campaign}\n[active_learning]\n'
        f"{al}\n[active_learning.model]\n" + "\n".join(lines.values()) + "\n"
    )


AL_BASE = {
    "pool": 'pool = "t.csv"',
    "oracle": 'oracle = "table"',
    "table": 'table = "t.csv"',
    "direction": 'direction = "maximize"',
    "n_initial": "n_initial = 4",
    "batch_size": "batch_size = 2",
    "rounds": "rounds = 1",
}


def al_with(**changes: str | None) -> str:
    lines = dict(AL_BASE)
    for k, v in changes.items():
        if v is None:
            lines.pop(k, None)
        else:
            lines[k] = v
    return al_toml("\n".join(lines.values()))


def _cases() -> list[Case]:
    c: list[Case] = []
    add = c.append

    # --------------------------------------------------------------- types, build, interaction
    for s, frag in BAD_SMILES + MD_REFUSED:
        if s not in ("CCO.O", "*C", "CC(=O)[O-]", "[NH4+]"):  # types shows what it can type
            add(Case("types", ["types", s], frag))
        add(Case("build", ["build", s, "--out", "{tmp}/b", "--protocol", "quick"], frag))
        add(
            Case("interaction", ["interaction", s, "--out", "{tmp}/i", "--protocol", "quick"], frag)
        )
    for s, frag in BAD_SMILES[:12] + MD_REFUSED[:5]:
        add(
            Case(
                "interaction",
                ["interaction", "CCO", "--partner", s, "--out", "{tmp}/i", "--protocol", "quick"],
                frag,
            )
        )
    build = ["build", "CCO", "--out", "{tmp}/b", "--protocol", "quick"]
    for v in FLOATS + ["-5", "0"]:
        add(Case("build", build + ["--box", v, "--box", "30", "--box", "30"], "box"))
    add(Case("build", build + ["--box", "30", "--box", "30"], "box"))
    for v in INTS + ["0", "-3"]:
        add(Case("build", build + ["--n", v], "--n|n_molecules"))
    for v in SEEDS:
        add(Case("build", build + ["--seed", v], "seed"))
    add(
        Case(
            "build",
            ["build", "CCO", "--out", "{f}", "--protocol", "quick"],
            "is a file",
            files={"f": "x"},
        )
    )
    add(
        Case(
            "build",
            ["build", "CCO", "--out", "{f}/sub", "--protocol", "quick"],
            "is a file",
            files={"f": "x"},
        )
    )
    for proto, frag, files in [
        ("nope", "Unknown protocol", {}),
        ("", "Unknown protocol", {}),
        ("{tmp}", "Unknown protocol", {}),
        ("{p}", "TOML", {"p": BINARY}),
        ("{p}", "TOML", {"p": "[[["}),
        ("{p}", "temperature_K", {"p": 'preset = "quick"\ntemperature_K = "hot"'}),
        ("{p}", "nope_field", {"p": 'preset = "quick"\nnope_field = 1'}),
        ("{p}", "box_A", {"p": 'preset = "quick"\nbox_A = [nan, 20, 20]'}),
        ("{p}", "fast", {"p": 'preset = "fast"'}),
    ]:
        add(
            Case(
                "build",
                ["build", "CCO", "--out", "{tmp}/b", "--protocol", proto],
                frag,
                files=files,
            )
        )
    SETS = [
        ("pressure_atm=NaN", "pressure_atm"),
        ("pressure_atm=inf", "pressure_atm"),
        ("pressure_atm=-1", "pressure_atm"),
        ('box_A=["a",1,2]', "box_A"),
        ("box_A=[1,2]", "box_A"),
        ("box_A=[0,30,30]", "box_A"),
        ("box_A=30", "box_A"),
        ("nope=1", "nope"),
        ("=1", "field"),
        ("pressure_atm", "FIELD=VALUE"),
        ("temperature_K=-5", "temperature_K"),
        ("temperature_K=0", "temperature_K"),
        ("temperature_K=1e400", "temperature_K"),
        ('temperature_K="300"', "temperature_K"),
        ("temperature_K=[300]", "temperature_K"),
        ("temperature_K=true", "temperature_K"),
        ("n_molecules=0", "n_molecules"),
        ("n_molecules=1.5", "n_molecules"),
        ("n_molecules=-8", "n_molecules"),
        ("seed=-1", "seed"),
        ("seed=1e20", "seed"),
        ("timestep_fs=5", "timestep_fs"),
        ("timestep_fs=-1", "timestep_fs"),
        ("nvt_ps=nan", "nvt_ps"),
        ("cutoff_A=0", "cutoff_A"),
        ("hbond=1", "hbond"),
        ("charges=am1", "charges"),
        ("packing=grid", "packing"),
        ("replicas=0", "replicas"),
        ("nvt_discard_fraction=1", "nvt_discard_fraction"),
        ("pack_density_fraction=5", "pack_density_fraction"),
        ("kspace_accuracy=0", "kspace_accuracy"),
    ]
    for s, frag in SETS:
        add(Case("build", build + ["--set", s], frag))
    inter = ["interaction", "CCO", "--out", "{tmp}/i", "--protocol", "quick"]
    for s, frag in SETS[:16]:
        add(Case("interaction", inter + ["--set", s], frag))
    for v in FLOATS + ["-1", "0"]:
        add(Case("interaction", inter + ["--timeout", v], "timeout"))
    for v in INTS[:4] + ["0", "-2"]:
        add(Case("interaction", inter + ["--ranks", v], "ranks"))
        add(Case("interaction", inter + ["--replicas", v], "replicas"))
    for lmp, frag in [("'lmp", "quot"), ('lmp "a', "quot"), ("   ", "launch command")]:
        add(Case("interaction", inter + ["--lmp", lmp], frag))
    for env, frag in [
        ({"MDXFER_RANKS": "abc"}, "MDXFER_RANKS"),
        ({"MDXFER_RANKS": "0"}, "MDXFER_RANKS"),
        ({"MDXFER_RANKS": "-2"}, "MDXFER_RANKS"),
        ({"MDXFER_RANKS": "1.5"}, "MDXFER_RANKS"),
        ({"MDXFER_LMP": "'lmp"}, "MDXFER_LMP"),
    ]:
        add(Case("interaction", inter, frag, env=env))
    add(Case("interaction", inter + ["--partner-dir", "{tmp}/nowhere"], "partner"))
    add(Case("interaction", inter + ["--partner-dir", "{f}"], "partner", files={"f": "x"}))
    add(
        Case(
            "interaction",
            ["interaction", "CCO", "--out", "{f}", "--protocol", "quick"],
            "is a file",
            files={"f": "x"},
        )
    )

    # --------------------------------------------------------------- learning commands
    pre = [
        "pretrain",
        "--out",
        "{tmp}/p",
        "--n",
        "20",
        "--n-val",
        "5",
        "--epochs",
        "1",
        "--no-progress",
    ]
    for opt, vals in [
        ("--n", INTS + ["1", "0", "-5"]),
        ("--n-val", INTS[:4] + ["0"]),
        ("--epochs", ["0", "-1", "abc"]),
        ("--patience", ["0", "x"]),
        ("--batch-size", ["0", "-1", "1.5"]),
        ("--seed", SEEDS),
        ("--split-seed", SEEDS),
        ("--threads", ["0", "-1"]),
        ("--jobs", ["0", "abc"]),
        ("--time-limit", FLOATS + ["-1", "0"]),
    ]:
        for v in vals:
            add(Case("pretrain", pre + [opt, v], f"{opt}|subset size" if opt == "--n" else opt))
    for args, frag, files in [
        (["--n", "20", "--n-val", "20"], "n-val", {}),
        (["--preset", "nope"], "preset", {}),
        (["--preset", ""], "preset", {}),
        (["--target", "nope"], "nope", {}),
        (["--target", "SMILES"], "SMILES", {}),
        (["--init-encoder", "{tmp}/none"], "none", {}),
        (["--init-encoder", "{m}"], "Cannot read", {"m/model.pt": "x"}),
        (["--n", "1000000000"], "subset size (--n)", {}),
    ]:
        add(Case("pretrain", pre + args, frag, files=files))
    add(
        Case(
            "pretrain",
            ["pretrain", "--out", "{f}", "--n", "20", "--n-val", "5"],
            "is a file",
            files={"f": "x"},
        )
    )

    tr = [
        "transfer",
        "--base",
        "{MODEL}",
        "--data",
        "{t}",
        "--out",
        "{tmp}/o",
        "--epochs",
        "1",
        "--patience",
        "1",
        "--repeats",
        "1",
        "--folds",
        "2",
        "--no-progress",
    ]
    tfiles = {"t": TABLE}
    for opt, vals in [
        ("--folds", ["0", "1", "-2", "x", "100"]),
        ("--repeats", ["0", "x"]),
        ("--lr", FLOATS + ["-1", "0"]),
        ("--epochs", ["0", "-1"]),
        ("--patience", ["0"]),
        ("--seed", SEEDS),
        ("--threads", ["0"]),
        ("--top", ["0", "-1"]),
        ("--mode", ["nope", ""]),
    ]:
        for v in vals:
            frag = "folds" if opt == "--folds" and v == "100" else opt.strip("-")
            add(Case("transfer", tr + [opt, v], frag, files=tfiles))
    for data, frag in [
        ("", "Cannot read|empty|not a CSV"),
        (BINARY, "Cannot read|binary"),
        ("smiles,value\nCCO,1\n", "target"),
        ("smiles,target\n" + "CCO,1\n" * 12, "again"),
        ("smiles,target\n" + "".join(f"{'C' * k},2.0\n" for k in range(1, 13)), "constant"),
        ("smiles,target\nCCO,1\nCCC,2\n", "at least"),
        ("smiles,target\n" + "".join(f"{'C' * k}O,x\n" for k in range(1, 13)), "number"),
        (
            "smiles,target\n" + "".join(f"{'C' * k}O,nan\n" for k in range(1, 13)),
            "nan|without a target",
        ),
        ("smiles,target\n" + "".join(f"CCÖ{k},{k}\n" for k in range(1, 13)), "SMILES"),
    ]:
        add(Case("transfer", tr, frag, files={"t": data}))
    add(Case("transfer", tr[:4] + ["{tmp}/none.csv"] + tr[5:], "does not exist", files=tfiles))
    add(
        Case(
            "transfer",
            ["transfer", "--base", "{m}", "--data", "{t}", "--out", "{tmp}/o"],
            "Cannot read",
            files={**TEXT_MODEL, "t": TABLE},
        )
    )
    add(Case("transfer", ["transfer", "--data", "{t}", "--out", "{tmp}/o"], "base", files=tfiles))
    add(Case("transfer", tr[:6] + ["{f}"] + tr[7:], "is a file", files={**tfiles, "f": "x"}))
    add(Case("transfer", tr + ["--smiles-col", "nope"], "nope", files=tfiles))
    add(
        Case(
            "transfer",
            tr + ["--target-col", "smiles"],
            "not a number|is the SMILES column",
            files=tfiles,
        )
    )

    rk = ["rank", "{c}", "--model", "{MODEL}", "--out", "{tmp}/r.csv", "--no-progress"]
    rfiles = {"c": SMI}
    for opt, vals in [
        ("--top", ["0", "-1", "x"]),
        ("--threads", ["0"]),
        ("--jobs", ["0", "-1"]),
        ("--unsupported", ["nope", ""]),
    ]:
        for v in vals:
            add(Case("rank", rk + [opt, v], opt.strip("-"), files=rfiles))
    for data, frag in [
        ("", "no"),
        (BINARY, "text"),
        ("# only comments\n\n", "no"),
        ("name,target\nx,1\n", "smiles"),
        ("CCÖ\nC1CC\n", "SMILES"),
    ]:
        add(Case("rank", rk, frag, files={"c": data}))
    add(
        Case(
            "rank", ["rank", "{tmp}/none.smi", "--model", "{MODEL}"], "does not exist", files=rfiles
        )
    )
    add(Case("rank", ["rank", "{c}", "--model", "{tmp}/nomodel"], "nomodel", files=rfiles))
    add(
        Case(
            "rank",
            ["rank", "{c}", "--model", "{m}", "--out", "{tmp}/r.csv"],
            "Cannot read",
            files={**rfiles, **TEXT_MODEL},
        )
    )
    add(
        Case(
            "rank",
            ["rank", "{c}", "--model", "{MODEL}", "--out", "{tmp}"],
            "is a folder",
            files=rfiles,
        )
    )

    ss = ["selfsup", "--out", "{tmp}/s", "--n", "20", "--epochs", "1", "--no-progress"]
    for opt, vals in [
        ("--n", ["-1", "x", "1.5"]),
        ("--epochs", ["0"]),
        ("--batch-size", ["0", "-4"]),
        ("--seed", SEEDS[:3]),
        ("--time-limit", FLOATS[:6] + ["-2"]),
        ("--threads", ["0"]),
        ("--preset", ["nope"]),
        ("--tasks", ["nope", "", "atom,x"]),
        ("--balance", ["median", ""]),
    ]:
        for v in vals:
            add(Case("selfsup", ss + [opt, v], "task" if opt == "--tasks" else opt.strip("-")))
    add(Case("selfsup", ["selfsup", "--out", "{tmp}/s", "--n", "0"], "No molecules"))
    for data, frag in [(BINARY, "binary"), ("", "no"), ("CCÖ\n", "no")]:
        add(
            Case(
                "selfsup",
                ["selfsup", "--out", "{tmp}/s", "--n", "0", "--smiles", "{x}"],
                frag,
                files={"x": data},
            )
        )
    add(
        Case(
            "selfsup",
            ["selfsup", "--out", "{tmp}/s", "--smiles", "{tmp}/none.smi"],
            "does not exist",
        )
    )
    add(Case("selfsup", ["selfsup", "--out", "{f}", "--n", "20"], "is a file", files={"f": "x"}))

    lb = [
        "library",
        "build",
        "--out",
        "{tmp}/l",
        "--n",
        "20",
        "--n-val",
        "5",
        "--gnn",
        "0",
        "--fp",
        "1",
        "--no-progress",
    ]
    for opt, vals in [
        ("--properties", ["nope", "", "cv,nope"]),
        ("--gnn", ["-1", "x"]),
        ("--fp", ["-1"]),
        ("--n", ["1", "0"]),
        ("--n-val", ["0"]),
        ("--gnn-epochs", ["0"]),
        ("--fp-epochs", ["0"]),
        ("--model-minutes", FLOATS[:6] + ["-1", "0"]),
        ("--seed", SEEDS[:3]),
        ("--jobs", ["0"]),
    ]:
        for v in vals:
            add(
                Case(
                    "library build",
                    lb + [opt, v],
                    "property" if opt == "--properties" else opt.strip("-"),
                )
            )
    add(Case("library build", lb[:-4] + ["--gnn", "0", "--fp", "0"], "gnn"))
    add(Case("library build", ["library", "build", "--out", "{f}"], "is a file", files={"f": "x"}))
    for files, frag in [
        ({}, "manifest"),
        ({"l/manifest.json": "{not json"}, "manifest"),
        ({"l/manifest.json": "[]"}, "manifest"),
        ({"l/manifest.json": BINARY}, "manifest"),
        ({"l/manifest.json": '{"models": [1]}'}, "manifest"),
        ({"l/manifest.json": '{"models": [{"name": "a"}]}'}, "lacks"),
    ]:
        add(Case("library list", ["library", "list", "{tmp}/l"], frag, files=files))
    add(Case("library list", ["library", "list", "{f}"], "manifest", files={"f": "x"}))

    for sub in ("small-data", "extrapolation"):
        bm = [
            "benchmark",
            sub,
            "--out",
            "{tmp}/b.csv",
            "--n",
            "40",
            "--seeds",
            "1",
            "--approaches",
            "direct_fp_ridge",
        ]
        for opt, vals in [
            ("--seeds", ["0", "1001", "x"]),
            ("--n", ["1"]),
            ("--seed", ["-1", "x"]),
            ("--approaches", ["nope", ""]),
            ("--target", ["nope", ""]),
            ("--gnn-epochs", ["0"]),
            ("--threads", ["0"]),
            ("--cv-repeats", ["0"]),
        ]:
            for v in vals:
                add(
                    Case(
                        f"benchmark {sub}",
                        bm + [opt, v],
                        "property" if opt == "--target" else opt.strip("-"),
                    )
                )
        for opt in ("--library", "--ssl", "--source", "--data"):
            add(Case(f"benchmark {sub}", bm + [opt, "{tmp}/none"], "none"))
        add(
            Case(
                f"benchmark {sub}",
                bm[:2] + ["--out", "{f}/x.csv"] + bm[4:],
                "is a file",
                files={"f": "x"},
            )
        )
        add(
            Case(
                f"benchmark {sub}",
                bm + ["--data", "{d}"],
                "Cannot read|binary",
                files={"d": BINARY},
            )
        )
    bx = [
        "benchmark",
        "extrapolation",
        "--out",
        "{tmp}/b.csv",
        "--n",
        "20",
        "--approaches",
        "direct_fp_ridge",
    ]
    for v in FLOATS[:6] + ["-0.1", "1.5", "0", "1"]:
        add(Case("benchmark extrapolation", bx + ["--quantile", v], "quantile"))
    for v in FLOATS[:6]:
        add(Case("benchmark extrapolation", bx + ["--threshold", v], "threshold"))
    bs = [
        "benchmark",
        "small-data",
        "--out",
        "{tmp}/b.csv",
        "--n",
        "20",
        "--approaches",
        "direct_fp_ridge",
    ]
    add(Case("benchmark small-data", bs + ["--n-train", "1"], "n-train"))
    add(Case("benchmark small-data", bs + ["--n-train", "50"], "n_train"))

    # --------------------------------------------------------------- campaign
    bad_files = [
        ({"c.toml": BINARY}, "TOML"),
        ({"c.toml": ""}, "no candidates|does not exist yet"),
        ({"c.toml": "[[["}, "TOML"),
        ({}, "does not exist"),
    ]
    camp_values = [
        (campaign_toml(campaign="workers = -3"), "workers"),
        (campaign_toml(campaign='max_in_flight = "many"'), "max_in_flight"),
        (campaign_toml(campaign="max_in_flight = 0"), "max_in_flight"),
        (campaign_toml(campaign="max_in_flight = -1"), "max_in_flight"),
        (campaign_toml(campaign="max_in_flight = 1.5"), "max_in_flight"),
        (campaign_toml(campaign="max_in_flight = nan"), "max_in_flight"),
        (campaign_toml(campaign='partner = "[Fe]"'), "partner"),
        (campaign_toml(campaign='partner = "CC(=C)C=CÖ"'), "partner"),
        (campaign_toml(campaign='partner = ""'), "partner"),
        (campaign_toml(campaign="partner = 5"), "partner"),
        (campaign_toml(campaign='name = "a\\nb"'), "name"),
        (campaign_toml(campaign="name = 7"), "name"),
        (campaign_toml(campaign='database = ""'), "database"),
        (campaign_toml(campaign='sqlite_journal = "nope"'), "journal"),
        (campaign_toml(campaign="nope = 1"), "nope"),
        (campaign_toml(candidates="smiles = [1, 2]"), "smiles"),
        (campaign_toml(candidates='file = "none.smi"'), "none.smi"),
        (campaign_toml(candidates='nope = ["CCO"]'), "nope"),
        (campaign_toml(protocol="temperature_K = nan"), "temperature_K"),
        (campaign_toml(protocol="temperature_K = -1"), "temperature_K"),
        (campaign_toml(protocol='temperature_K = "hot"'), "temperature_K"),
        (campaign_toml(protocol="box_A = [nan, 20, 20]"), "box_A"),
        (campaign_toml(protocol="box_A = [inf, 20, 20]"), "box_A"),
        (campaign_toml(protocol="n_molecules = 0"), "n_molecules"),
        (campaign_toml(protocol="replicas = 0"), "replicas"),
        (campaign_toml(protocol="seed = -1"), "seed"),
        (campaign_toml(protocol="nope = 1"), "nope"),
        (campaign_toml(preset="fast"), "fast"),
        (campaign_toml(execution='[execution]\nprofile = "nope"'), "nope"),
        (
            campaign_toml(
                execution='[execution]\nprofile = "local"\n[execution.lammps]\nranks = 0'
            ),
            "ranks",
        ),
        (
            campaign_toml(
                execution='[execution]\nprofile = "local"\n[execution.lammps]\nranks = -1'
            ),
            "ranks",
        ),
        (
            campaign_toml(
                execution='[execution]\nprofile = "local"\n[execution.lammps]\nranks = nan'
            ),
            "ranks",
        ),
        (
            campaign_toml(
                execution='[execution]\nprofile = "local"\n[execution.lammps]\nranks = "x"'
            ),
            "ranks",
        ),
        (
            campaign_toml(
                execution='[execution]\nprofile = "local"\n[execution.lammps]\ncommand = "\'lmp"'
            ),
            "command",
        ),
        (
            campaign_toml(
                execution='[execution]\nprofile = "local"\n[execution.lammps]\nenv = "x"'
            ),
            "env",
        ),
        (
            campaign_toml(
                execution='[execution]\nprofile = "local"\n[execution.executor]\nworkers = "many"'
            ),
            "workers",
        ),
        (
            campaign_toml(
                execution='[execution]\nprofile = "local"\n[execution.executor]\nworkers = -3'
            ),
            "workers",
        ),
        (
            campaign_toml(
                execution='[execution]\nprofile = "local"\n[execution.executor]\nworkers = inf'
            ),
            "workers",
        ),
        (
            campaign_toml(
                execution='[execution]\nprofile = "slurm"\n[execution.provider]\nmem_per_node = "lots"'
            ),
            "mem_per_node",
        ),
        (
            campaign_toml(
                execution='[execution]\nprofile = "slurm"\n[execution.provider]\nwalltime = "1\\n#SBATCH -x"'
            ),
            "walltime",
        ),
        (
            campaign_toml(
                execution='[execution]\nprofile = "pbs"\n[execution.provider]\ncpus_per_node = -4'
            ),
            "cpus_per_node",
        ),
        (
            campaign_toml(
                execution='[execution]\nprofile = "slurm"\n[execution.provider]\nmax_blocks = 1e9'
            ),
            "max_blocks",
        ),
        (campaign_toml(rest="[retry]\nmax_retries = -1"), "max_retries"),
        (campaign_toml(rest="[retry]\nmax_retries = nan"), "max_retries"),
        (campaign_toml(rest='[retry]\nmax_retries = "x"'), "max_retries"),
        (campaign_toml(rest='[retry]\nretry_on = ["nope"]'), "nope"),
        (campaign_toml(rest='[retry]\nretry_on = "lammps"'), "retry_on"),
        (campaign_toml(rest="[nope]\nx = 1"), "nope"),
    ]
    for cmd in ("run", "status", "export", "table", "retry", "profile"):
        extra = ["--out", "{tmp}/x.csv"] if cmd in ("export", "table") else []
        for files, frag in bad_files:
            if cmd in ("retry", "profile") and "no candidates" in frag:
                continue  # an empty file is all defaults: valid there
            add(Case(f"campaign {cmd}", ["campaign", cmd, "{c.toml}"] + extra, frag, files=files))
        for text, frag in camp_values if cmd in ("run", "profile") else camp_values[::4]:
            add(
                Case(
                    f"campaign {cmd}",
                    ["campaign", cmd, "{c.toml}"] + extra,
                    frag,
                    files={"c.toml": text},
                )
            )
    good = campaign_toml(campaign='database = "c.db"')
    add(
        Case(
            "campaign status",
            ["campaign", "status", "{c.toml}", "--top", "-1"],
            "top",
            files={"c.toml": good},
        )
    )
    add(
        Case(
            "campaign status",
            ["campaign", "status", "{c.toml}", "--top", "x"],
            "top",
            files={"c.toml": good},
        )
    )
    for out, frag, files in [("{tmp}", "is a folder", {}), ("{f}/x.csv", "is a file", {"f": "x"})]:
        add(
            Case(
                "campaign export",
                ["campaign", "export", "{c.toml}", "--out", out],
                frag,
                files={"c.toml": good, **files},
            )
        )
        add(
            Case(
                "campaign table",
                ["campaign", "table", "{c.toml}", "--out", out],
                frag,
                files={"c.toml": good, **files},
            )
        )
    for data, frag in [("a,b\n1,2\n", "column"), (BINARY, "text"), ("", "empty")]:
        add(
            Case(
                "campaign table",
                ["campaign", "table", "{x.csv}", "--out", "{tmp}/t.csv"],
                frag,
                files={"x.csv": data},
            )
        )
    add(
        Case(
            "campaign status",
            ["campaign", "status", "{c.toml}"],
            "Database",
            files={"c.toml": good, "c.db": BINARY},
        )
    )
    add(
        Case(
            "campaign status",
            ["campaign", "status", "{c.toml}"],
            "does not exist yet",
            files={"c.toml": good},
        )
    )
    for args, frag, files in [
        (["--out", "{f}"], "exists", {"f": "x"}),
        (["--out", "{tmp}"], "folder", {}),
        (["--out", "{f}/c.toml"], "is a file", {"f": "x"}),
        (["--out", "{tmp}/c.toml", "--profile", "nope"], "nope", {}),
        (["--out", "{tmp}/c.toml", "--profile", ""], "profile", {}),
    ]:
        add(Case("campaign init", ["campaign", "init"] + args, frag, files=files))

    # --------------------------------------------------------------- active learning
    al_files = {"t.csv": TABLE}
    al_values = [
        (al_toml(""), "pool"),
        (al_with(pool=None), "pool"),
        (al_with(direction=None), "direction"),
        (al_with(direction='direction = "up"'), "direction"),
        (al_with(oracle='oracle = "nope"'), "oracle"),
        (al_with(table=None), "table"),
        (al_with(n_initial="n_initial = 0"), "n_initial"),
        (al_with(n_initial="n_initial = -1"), "n_initial"),
        (al_with(n_initial="n_initial = nan"), "n_initial"),
        (al_with(n_initial='n_initial = "x"'), "n_initial"),
        (al_with(n_initial="n_initial = 1.5"), "n_initial"),
        (al_with(batch_size="batch_size = 0"), "batch_size"),
        (al_with(rounds="rounds = -1"), "rounds"),
        (al_with(rounds="rounds = inf"), "rounds"),
        (al_with(acq='acquisition = "nope"'), "acquisition"),
        (al_with(delay="oracle_delay_s = -5"), "oracle_delay_s"),
        (al_with(delay="oracle_delay_s = nan"), "oracle_delay_s"),
        (al_with(beta="beta = nan"), "beta"),
        (al_with(seed="seed = -1"), "seed"),
        (al_with(budget="budget = 0"), "budget"),
        (al_with(nope="nope = 1"), "nope"),
        (al_with(pool='pool = "none.smi"'), "none.smi"),
        (al_with(table='table = "none.csv"'), "none.csv"),
        (al_toml("\n".join(AL_BASE.values()), model='kind = "nope"'), "surrogate"),
        (al_toml("\n".join(AL_BASE.values()), model="members = 1"), "members"),
        (al_toml("\n".join(AL_BASE.values()), model='members = "x"'), "members"),
        (al_toml("\n".join(AL_BASE.values()), model="cv_folds = 1"), "cv_folds"),
        (al_toml("\n".join(AL_BASE.values()), model='features = "x"'), "feature"),
        (al_toml("\n".join(AL_BASE.values()), campaign="workers = -3"), "workers"),
        (
            al_toml("\n".join(AL_BASE.values()) + '\n[active_learning.diversity]\nmethod = "nope"'),
            "nope",
        ),
        (
            al_toml("\n".join(AL_BASE.values()) + "\n[active_learning.diversity]\nshortlist = nan"),
            "shortlist",
        ),
    ]
    for cmd in ("run", "status", "report"):
        for files, frag in [
            ({"a.toml": BINARY}, "TOML"),
            ({}, "does not exist"),
            ({"a.toml": campaign_toml()}, "active_learning"),
        ]:
            add(Case(f"al {cmd}", ["al", cmd, "{a.toml}"], frag, files=files))
        for text, frag in al_values if cmd == "run" else al_values[::5]:
            add(
                Case(f"al {cmd}", ["al", cmd, "{a.toml}"], frag, files={"a.toml": text, **al_files})
            )
    for pool, frag in [("", "pool"), (BINARY, "text|binary"), ("CCÖ\nC C\n", "n_initial")]:
        add(
            Case(
                "al run",
                ["al", "run", "{a.toml}", "--no-report"],
                frag,
                files={"a.toml": al_with(pool='pool = "p.smi"'), "p.smi": pool, **al_files},
            )
        )
    add(
        Case(
            "al run",
            ["al", "run", "{a.toml}", "--max-rounds", "-1"],
            "max-rounds",
            files={"a.toml": al_with(), **al_files},
        )
    )
    add(
        Case(
            "al report",
            ["al", "report", "{a.toml}", "--out", "{f}"],
            "is a file",
            files={"a.toml": al_with(), "f": "x", **al_files},
        )
    )

    ab = [
        "al",
        "benchmark",
        "--oracle",
        "{t.csv}",
        "--out",
        "{tmp}/ab",
        "--initial",
        "4",
        "--batch",
        "2",
        "--rounds",
        "1",
        "--seeds",
        "1",
        "--features",
        "morgan",
        "--members",
        "4",
        "-q",
    ]
    for opt, vals in [
        ("--initial", ["0", "-1", "x", "1000"]),
        ("--batch", ["0", "x"]),
        ("--rounds", ["-1", "1.5"]),
        ("--seeds", ["0", "-1"]),
        ("--members", ["1", "0"]),
        ("--features", ["nope", ""]),
        ("--surrogate", ["nope"]),
        ("--diversity", ["nope", ""]),
        ("--shortlist", FLOATS[:6] + ["0", "-1"]),
        ("--beta", FLOATS[:6]),
        ("--method", ["nope"]),
        ("--smiles-col", ["nope"]),
        ("--target-col", ["nope", "smiles"]),
    ]:
        for v in vals:
            frag = {"1000": "budget", "smiles": "not a number|is the SMILES column"}.get(
                v, opt.strip("-").replace("-col", "")
            )
            frag = {"--features": "feature", "--method": "acquisition"}.get(opt, frag)
            add(Case("al benchmark", ab + [opt, v], frag, files=al_files))
    for data, frag in [
        ("", "cannot be read"),
        (BINARY, "text|binary|cannot be read"),
        ("smiles,value\nCCO,1\n", "target"),
        ("smiles,target\nCCO,1\nCCC,2\n", "budget"),
        ("smiles,target\n" + "".join(f"{'C' * k}O,x\n" for k in range(1, 13)), "number"),
    ]:
        add(Case("al benchmark", ab, frag, files={"t.csv": data}))
    add(
        Case("al benchmark", ab[:3] + ["{tmp}/none.csv"] + ab[4:], "does not exist", files=al_files)
    )
    add(Case("al benchmark", ab[:5] + ["{f}"] + ab[6:], "is a file", files={**al_files, "f": "x"}))
    ao = ["al", "oracle", "--out", "{tmp}/o.csv"]
    for opt, vals in [
        ("--n", ["0", "-1", "x", "100000000"]),
        ("--seed", SEEDS[:3]),
        ("--property", ["nope", "SMILES", ""]),
    ]:
        for v in vals:
            add(Case("al oracle", ao + [opt, v], {"SMILES": "SMILES"}.get(v, opt.strip("-"))))
    for out, frag, files in [("{tmp}", "is a folder", {}), ("{f}/o.csv", "is a file", {"f": "x"})]:
        add(Case("al oracle", ["al", "oracle", "--out", out], frag, files=files))
    return c


CASES = _cases()


def per_command() -> dict[str, int]:
    """How many inputs the suite tries per command (the closing note of issue 14)."""
    return dict(sorted(Counter(case.command for case in CASES).items()))


# ------------------------------------------------------------------------------ running a case


class Alarm(Exception):
    """A case ran longer than :data:`ALARM_S`: the bad input was accepted and work started."""


@pytest.fixture
def alarm():
    def ring(signum, frame):
        raise Alarm(f"still running after {ALARM_S} s: the input was accepted")

    old = signal.signal(signal.SIGALRM, ring)
    signal.alarm(ALARM_S)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A real pretrained model, as small as it gets (30 QM9 molecules, 1 epoch): transfer and
    rank cases reach the checks behind the model loading."""
    from mdxfer.learn.pretrain import PretrainSettings, pretrain

    out = tmp_path_factory.mktemp("tiny_model")
    pretrain(
        out,
        PretrainSettings(n=30, n_val=8, preset="paper", max_epochs=1),
        threads=1,
        progress=False,
        use_cache=False,
    )
    return out


def materialise(case: Case, tmp: Path, model: Path | None = None) -> list[str]:
    """Write the case's files under ``tmp``; its arguments with the paths filled in
    (``{MODEL}``: ``model``)."""
    paths = {"tmp": str(tmp), "MODEL": str(model)}
    for name, content in case.files.items():
        p = tmp / name
        p.parent.mkdir(parents=True, exist_ok=True)
        (p.write_bytes if isinstance(content, bytes) else p.write_text)(content)
        paths[name.split("/")[0]] = str(tmp / name.split("/")[0])
    for arg in case.args:
        for name in re.findall(r"\{([^{}]+)\}", arg):
            paths.setdefault(name, str(tmp / name))  # a file the case does not create
    return [re.sub(r"\{([^{}]+)\}", lambda m: paths[m.group(1)], a) for a in case.args]


def invoke(args: list[str], env: dict[str, str] | None = None):
    base = {"MDXFER_LMP": "false", "COLUMNS": "400", "TERMINAL_WIDTH": "400", "MDXFER_DEBUG": ""}
    return CliRunner().invoke(app, args, env={**base, **(env or {})})


def flat(text: str) -> str:
    """Output with Rich's box characters removed and whitespace collapsed."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def assert_clean_refusal(r, fragment: str) -> None:
    """Non-zero exit through the error path; one paragraph naming ``fragment``."""
    out = r.stdout + r.stderr
    text = flat(out)
    assert not isinstance(r.exception, Alarm), "accepted: the command started real work"
    assert r.exit_code not in (0, None), f"accepted (exit 0): {text[-600:]}"
    assert isinstance(r.exception, SystemExit), f"{type(r.exception).__name__}: {r.exception}"
    assert "Traceback" not in out and "Unexpected " not in text, text
    if r.exit_code == 2:  # typer's usage error: option named
        assert "Usage:" in text, text
    else:
        assert r.exit_code in (1, 3), (r.exit_code, text)
        tail = out[out.rfind("error:") :] if "error:" in out else ""
        assert tail, f"no 'error:' line: {text[-600:]}"
        assert not re.search(r"\n\s*\n", tail.strip()), f"more than one paragraph: {tail}"
    assert any(f.lower() in text.lower() for f in fragment.split("|")), (
        f"{fragment!r} not in: {text[-800:]}"
    )


@pytest.mark.parametrize("case", CASES, ids=[f"{c.command}: {c.id}" for c in CASES])
def test_bad_input_is_refused_cleanly(case, tmp_path, alarm, request):
    needs_model = any("{MODEL}" in a for a in case.args)
    args = materialise(
        case, tmp_path, request.getfixturevalue("tiny_model") if needs_model else None
    )
    assert_clean_refusal(invoke(args, case.env), case.fragment)


def test_report_inputs_per_command(capsys):
    counts = per_command()
    with capsys.disabled():
        print(f"\nfuzz inputs per command ({len(CASES)} in all): " + json.dumps(counts))
    commands = {
        "types",
        "build",
        "interaction",
        "pretrain",
        "transfer",
        "rank",
        "selfsup",
        "library build",
        "library list",
        "benchmark small-data",
        "benchmark extrapolation",
        "campaign init",
        "campaign run",
        "campaign status",
        "campaign export",
        "campaign table",
        "campaign retry",
        "campaign profile",
        "al run",
        "al status",
        "al report",
        "al benchmark",
        "al oracle",
    }
    assert set(counts) == commands and min(counts.values()) >= 5


# ------------------------------------------------------------------------------ properties: SMILES

SMILES_ALPHABET = "CNOSFPBIcnosp()[]=#123456789%+-@H/\\.*lr ÖaeZ\t:$0"
smiles_text = st.one_of(
    st.text(alphabet=SMILES_ALPHABET, max_size=24),
    st.text(max_size=12),
    st.sampled_from(
        ["CCO", "c1ccccc1", "CC(=C)C=C", "C[C@@H](O)F", "OC(=O)CCl", "c1cc[nH]c1"]
    ).flatmap(
        lambda s: st.tuples(
            st.just(s), st.integers(0, len(s)), st.text(SMILES_ALPHABET, max_size=3)
        ).map(lambda t: t[0][: t[1]] + t[2] + t[0][t[1] :])
    ),
)


@FUZZ
@given(smiles_text)
def test_smiles_text_is_refused_or_round_trips(text):
    from rdkit import Chem

    from mdxfer.learn.featurize import parse_smiles_or_none as ml_parse
    from mdxfer.molecule import canonical_smiles, parse_smiles

    try:
        canon = canonical_smiles(text)
    except MdxferError as exc:
        assert str(exc) and "\n" not in str(exc).strip()
        return
    assert canon == canonical_smiles(canon)  # a fixed point
    assert Chem.MolToSmiles(Chem.MolFromSmiles(text.strip())) == canon
    assert parse_smiles(canon).GetNumAtoms() == parse_smiles(text).GetNumAtoms()
    assert ml_parse(text) is not None  # the ML side reads it too


@FUZZ
@given(smiles_text)
def test_types_command_on_random_smiles_never_shows_a_traceback(text):
    if "\x00" in text:
        text = text.replace("\x00", "")  # not passable as an argv
    r = invoke(["types", text])
    out = r.stdout + r.stderr
    assert "Traceback" not in out and "Unexpected " not in flat(out)
    assert r.exit_code in (0, 1, 2), (r.exit_code, r.exception)
    if r.exit_code:
        assert isinstance(r.exception, SystemExit) and "error:" in out


# ------------------------------------------------------------------------------ properties: numbers


def _numeric_protocol_fields() -> list[str]:
    from mdxfer.md.protocol import Protocol

    p = Protocol()
    return sorted(
        f
        for f in vars(p)
        if isinstance(getattr(p, f), (int, float)) and not isinstance(getattr(p, f), bool)
    )


NUMERIC_FIELDS = _numeric_protocol_fields()
#: values no numeric protocol field, campaign or AL number may take (TOML/JSON text)
BAD_NUMBER_TEXT = st.one_of(
    st.sampled_from(
        [
            "NaN",
            "nan",
            "inf",
            "-inf",
            "Infinity",
            "1e400",
            "-1e400",
            '"abc"',
            '"1"',
            "[1]",
            "{}",
            "true",
            "null",
        ]
    ),
    st.floats(allow_nan=True, allow_infinity=True)
    .filter(lambda x: not math.isfinite(x))
    .map(lambda x: "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")),
    st.text(alphabet="abcxyz_", min_size=1, max_size=6).map(json.dumps),
)
NEGATIVE = st.one_of(st.integers(-(10**12), -1).map(str), st.floats(-1e300, -1e-9).map(repr))


@FUZZ
@given(name=st.sampled_from(NUMERIC_FIELDS), value=st.one_of(BAD_NUMBER_TEXT, NEGATIVE))
def test_protocol_override_with_a_bad_number_is_refused_naming_the_field(name, value):
    from mdxfer.cli.md import parse_overrides
    from mdxfer.errors import ProtocolError
    from mdxfer.md.protocol import load_protocol

    with pytest.raises(ProtocolError, match=re.escape(name)):
        load_protocol("quick", parse_overrides([f"{name}={value}"]))


@FUZZ
@given(
    name=st.sampled_from(NUMERIC_FIELDS), big=st.sampled_from(["1e12", "1e30", "1e300", "10**9"])
)
def test_protocol_override_with_a_huge_number_is_refused_naming_the_field(name, big):
    """Huge is refused for counts, lengths, times and seeds alike (an upper bound per field)."""
    from mdxfer.cli.md import parse_overrides
    from mdxfer.errors import ProtocolError
    from mdxfer.md.protocol import load_protocol

    if name == "seed" and big == "10**9":
        return  # a valid seed (< 2**31)
    value = str(10**9) if big == "10**9" else big
    if isinstance(getattr(load_protocol("quick"), name), int) and "e" in value:
        value = str(int(float(value)))
    with pytest.raises(ProtocolError, match=re.escape(name)):
        load_protocol("quick", parse_overrides([f"{name}={value}"]))


CAMPAIGN_NUMBERS = [
    ("campaign", "max_in_flight"),
    ("retry", "max_retries"),
    ("execution.lammps", "ranks"),
    ("execution.executor", "workers"),
    ("protocol", "temperature_K"),
    ("protocol", "n_molecules"),
    ("protocol", "nvt_ps"),
]
AL_NUMBERS = ["n_initial", "batch_size", "rounds", "budget", "beta", "xi", "seed", "oracle_delay_s"]


def _campaign_text(section: str, key: str, value: str) -> str:
    sections = {
        "campaign": ['partner = "CC(=C)C=C"'],
        "candidates": ['smiles = ["CCO"]'],
        "protocol": ['preset = "quick"'],
        "retry": [],
        "execution": ['profile = "local"'],
        "execution.lammps": [],
        "execution.executor": [],
    }
    sections[section].append(f"{key} = {value}")
    return "".join(f"[{s}]\n" + "\n".join(lines) + "\n" for s, lines in sections.items() if lines)


@FUZZ
@given(where=st.sampled_from(CAMPAIGN_NUMBERS), value=st.one_of(BAD_NUMBER_TEXT, NEGATIVE))
def test_campaign_file_with_a_bad_number_is_refused_naming_the_field(tmp_path, where, value):
    from mdxfer.campaign.spec import load_spec

    value = {"NaN": "nan", "Infinity": "inf", "-Infinity": "-inf", "null": '""'}.get(value, value)
    if value in ("1e400", "-1e400"):
        value = value.replace("1e400", "inf")  # TOML has no overflow: inf is what it means
    f = tmp_path / "c.toml"
    f.write_text(_campaign_text(*where, value))
    with pytest.raises(MdxferError, match=re.escape(where[1])):
        from mdxfer.campaign.profiles import resolve_profile

        resolve_profile(load_spec(f))


def _finite(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


@FUZZ
@given(key=st.sampled_from(AL_NUMBERS), value=st.one_of(BAD_NUMBER_TEXT, NEGATIVE))
def test_al_section_with_a_bad_number_is_refused_naming_the_field(tmp_path, key, value):
    from mdxfer.al.loop import load_al_config

    value = {
        "NaN": "nan",
        "Infinity": "inf",
        "-Infinity": "-inf",
        "null": '""',
        "1e400": "inf",
        "-1e400": "-inf",
    }.get(value, value)
    if key in ("beta", "xi") and _finite(value):
        return  # any finite number is a valid weight
    (tmp_path / "t.csv").write_text(TABLE)
    lines = dict(AL_BASE)
    lines[key] = f"{key} = {value}"
    f = tmp_path / "a.toml"
    f.write_text(al_toml("\n".join(lines.values())))
    with pytest.raises(MdxferError, match=re.escape(key)):
        load_al_config(f)
