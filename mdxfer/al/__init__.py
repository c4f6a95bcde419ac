"""Active learning: where the two halves meet.

- :mod:`.acquisition` greedy, UCB, expected improvement, Thompson sampling, uncertainty, random
- :mod:`.diversity`   batch selection spread over chemical space (MaxMin, sphere exclusion, k-means)
- :mod:`.surrogate`   the transferred GCN as a cheap ensemble (frozen embedding computed once)
- :mod:`.oracles`     the MD campaign, or a ``smiles,target`` table
- :mod:`.state`       the loop's tables in the campaign database (resumable)
- :mod:`.loop`        the loop and the ``[active_learning]`` section of a campaign file
- :mod:`.report`      Markdown report per run
- :mod:`.benchmark`   acquisitions against random picking on a table oracle
"""

from mdxfer.al.acquisition import ACQUISITIONS, DEFAULT_ACQUISITION, Acquisition
from mdxfer.errors import ALError

__all__ = ["ACQUISITIONS", "DEFAULT_ACQUISITION", "Acquisition", "ALError"]
