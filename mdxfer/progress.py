"""The one progress bar (rich) of the learning commands; switched off, it does nothing."""

from __future__ import annotations


class ProgressBar:
    """``rich`` progress over ``total`` steps (None: unknown), or nothing when ``enabled`` is
    False. Columns: the description, the bar, done/total, then (``info=True``) a free text set
    by :meth:`update`, and the elapsed time. ``stderr``: draw on standard error (keeps standard
    output clean for piped results); ``transient``: erase the bar when it closes."""

    def __init__(
        self,
        enabled: bool,
        total: int | None,
        description: str = "",
        completed: int = 0,
        *,
        info: bool = False,
        stderr: bool = False,
        transient: bool = False,
    ):
        self.enabled = enabled
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        columns = [
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
        ]
        if info:
            columns.append(TextColumn("{task.fields[info]}", markup=False))
        self.p = Progress(
            *columns,
            TimeElapsedColumn(),
            transient=transient,
            **({"console": Console(stderr=True)} if stderr else {}),
        )
        self.t = self.p.add_task(description, total=total, completed=completed, info="")
        self.p.start()

    def set(self, description: str) -> None:
        """Change the description (what is running now)."""
        if self.enabled:
            self.p.update(self.t, description=description)

    def tick(self) -> None:
        """One more step done."""
        if self.enabled:
            self.p.advance(self.t)

    def update(self, completed: int, info: str = "") -> None:
        """``completed`` steps done; ``info``: the free text column (with ``info=True``)."""
        if self.enabled:
            self.p.update(self.t, completed=completed, info=info)

    def close(self) -> None:
        if self.enabled:
            self.p.stop()
