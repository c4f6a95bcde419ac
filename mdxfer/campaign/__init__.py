"""Campaigns: many interaction-energy simulations through Parsl, kept in a SQLite database,
resumable. Parsl is imported only when a campaign runs.

- :mod:`.retry`     failure classes and the retry policy (a leaf: every module below reads it)
- :mod:`.spec`      the campaign TOML file (candidates, partner, protocol, profile, database)
- :mod:`.store`     the SQLite store: molecules, tasks, results with provenance, content keys
- :mod:`.profiles`  local / slurm / pbs execution profiles as data -> ``parsl.Config``
- :mod:`.apps`      the tasks: thin functions over :mod:`mdxfer.md.interaction`
- :mod:`.runner`    the task graph, state updates, resume; :class:`Campaign`, :func:`run_campaign`
- :mod:`.blocks`    scheduler jobs (blocks) of a run: watched, cancelled when left over
- :mod:`.table`     the shipped table: finished rows of a campaign (or its export), sorted by name

Imports run one way: ``retry`` <- ``profiles`` <- ``spec`` <- ``runner`` (with ``store``,
``apps``, ``blocks``) <- ``table``. Errors live in :mod:`mdxfer.errors`, the LAMMPS launcher
and the orphan guard in :mod:`mdxfer.md.lammps` / :mod:`mdxfer.md.guard`.
"""

from mdxfer.campaign.runner import Campaign, RunReport, run_campaign
from mdxfer.campaign.spec import CampaignSpec, Candidate, load_spec, spec_from_dict
from mdxfer.errors import CampaignError

__all__ = [
    "Campaign",
    "CampaignError",
    "CampaignSpec",
    "Candidate",
    "RunReport",
    "load_spec",
    "run_campaign",
    "spec_from_dict",
]
