"""A counting progress bar (rich) that can be switched off: shared by the learning commands."""

from __future__ import annotations


class CountBar:
    """``rich`` progress over a known number of steps, or nothing when ``enabled`` is False."""

    def __init__(self, enabled: bool, total: int, description: str = "", completed: int = 0):
        self.enabled = enabled
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.p = Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                              TimeElapsedColumn())
            self.t = self.p.add_task(description, total=total, completed=completed)
            self.p.start()

    def set(self, description: str) -> None:
        if self.enabled:
            self.p.update(self.t, description=description)

    def tick(self) -> None:
        if self.enabled:
            self.p.advance(self.t)

    def close(self) -> None:
        if self.enabled:
            self.p.stop()
