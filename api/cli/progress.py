"""A progress bar for long CLI work (export, verify, replay), on standard error and only on a
terminal.

Piped or redirected, a command writes exactly what it wrote before and nothing more: the bar is
for a person watching, and a script reads the same bytes as ever. A command whose own output
goes to the same terminal (an export to standard output) shows no bar either: the two would
tear each other's lines. The bar is transient: it is gone once the work is done, and the
command's own last words stay.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

Tell = Callable[[int], None]  # how many are done so far


def wanted(output_is_stdout: bool = False) -> bool:
    """Whether a bar shows: standard error is a terminal, and (when the command writes its output
    to standard output as it goes) standard output is not."""
    if not sys.stderr.isatty():
        return False
    return not (output_is_stdout and sys.stdout.isatty())


@contextmanager
def progress_bar(what: str, total: int | None, show: bool, unit: str = "events") -> Iterator[Tell]:
    """A bar for `what` up to `total` (None: a count with no end) when `show`; yields the function
    to tell it how far the work is."""
    if not show:
        yield lambda done: None
        return
    console = Console(stderr=True)
    counted = (MofNCompleteColumn(), TextColumn(unit), TimeElapsedColumn(), TimeRemainingColumn())
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),  # with no total: a pulse, for work that cannot say how far it is
        *(counted if total is not None else (TimeElapsedColumn(),)),
    )
    with Progress(*columns, console=console, transient=True, refresh_per_second=8) as bar:
        task = bar.add_task(what, total=total)
        yield lambda done: bar.update(task, completed=done)
