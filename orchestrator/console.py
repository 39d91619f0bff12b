"""What a person sees in the terminal: one ``Reporter`` that the stages tell what happened.

Scheduling code calls the reporter's methods (``embedded``, ``worker_lost``, ...) and never
formats or prints; the reporter decides how it looks. Every text that comes from the user or
from an error (dataset names, paths, exception messages) is printed literally, never read as
rich markup, so a dataset called ``[rt]`` keeps its brackets; and the password of any URI in
it (a tracking URI ``postgresql://user:password@host/db``) is shown as ``***``.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from orchestrator.tracking.base import masked
from workers.specs import TrialSpec


def plural(count: int, word: str, words: str | None = None) -> str:
    """``count`` and ``word`` agreeing in number: "1 trial", "2 trials" (``words`` when not ``word`` + s)."""
    return f"{count} {word if count == 1 else (words or word + 's')}"


def describe(trial: TrialSpec) -> str:
    """A trial in words: dataset / embedder / initial pool / strategy / seed."""
    return (f"{trial.dataset} / {trial.embedder} / {trial.initial_pool.label} / "
            f"{trial.strategy.label} / seed {trial.seed}")


def terminal_console() -> Console:
    """The CLI's console: the terminal's width, or 140 columns when output is not a terminal."""
    return Console(width=None if sys.stdout.isatty() else 140)


class Reporter:
    """Prints progress and outcomes of a run to a rich ``Console``."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console if console is not None else terminal_console()

    @classmethod
    def quiet(cls) -> Reporter:
        """A reporter that prints nothing (benchmarks)."""
        return cls(Console(quiet=True))

    # --------------------------------------------------------------------------- plain lines
    def say(self, text: str, style: str | None = None) -> None:
        """One line, printed literally (no markup, no highlighting)."""
        self.console.print(Text(masked(text), style=style or ""), highlight=False)

    def warn(self, text: str) -> None:
        self.say(text, "yellow")

    def error(self, text: str) -> None:
        """``error: <text>`` with the prefix in red."""
        self.console.print(Text.assemble(("error:", "red"), " ", masked(text)), highlight=False)

    def tagged(self, tag: str, style: str, text: str) -> None:
        """``<tag> <text>`` with the tag coloured (``FAILED ...``, ``interrupted ...``)."""
        self.console.print(Text.assemble((tag, style), " ", masked(text)), highlight=False)

    def show(self, renderable) -> None:
        """A rich table or other renderable built by the caller."""
        self.console.print(renderable)

    # ---------------------------------------------------------------------------- the grid
    def grid(self, name: str, trials: int, jobs: int) -> None:
        self.console.print(Text.assemble((name, "bold"), f": {trials} trials, "
                                         f"{jobs} (embedder, dataset) pairs"), highlight=False)

    def skipped(self, done: int, failed: int) -> None:
        self.say(f"  {done} trials already done in MLflow, skipped"
                 + (f"; {failed} FAILED trials skipped (--only-missing)" if failed else ""))

    def running(self, trials: int, resumed: int, actors: int) -> None:
        note = f" ({resumed} continue an earlier run)" if resumed else ""
        self.say(f"  running {trials} trials{note} on {actors} actors")

    # ---------------------------------------------------------------------- embedding stage
    def found(self, dataset: str, embedder: str) -> None:
        self.say(f"  store: {dataset} x {embedder} found, skipped")

    def embedding(self, pairs: int, device: str) -> None:
        self.say(f"  embedding {pairs} (embedder, dataset) pairs on {device}")

    def embedded(self, name: str, rows: int, seconds: float, device: str) -> None:
        self.say(f"  embedded {name}: {rows} texts in {seconds:.1f} s on {device}")

    def embedding_failed(self, message: str) -> None:
        self.say(f"  {message}", "red")

    def store_problem(self, problem: str) -> None:
        self.warn(f"  store: {problem}; recomputing")

    # --------------------------------------------------------------------- trajectory stage
    @contextlib.contextmanager
    def trial_progress(self, total: int) -> Iterator[TrialBar]:
        """A progress bar over ``total`` trials, shown while the block runs."""
        columns = (TextColumn("trials"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("{task.fields[failed]} failed"))
        with Progress(*columns, console=self.console, transient=False) as progress:
            yield TrialBar(progress, progress.add_task("trials", total=total, failed=0))

    def waiting_for_actors(self, trials: int, cpus: float) -> None:
        self.warn(f"  {trials} trials wait for a trajectory actor: the cluster has no free {cpus} "
                  "CPU for one (lost nodes come back, or add some)")

    def worker_lost(self, why: str, trial: TrialSpec) -> None:
        self.warn(f"  worker lost ({why}); {describe(trial)} resubmitted from its checkpoint")


class TrialBar:
    """The trajectory stage's progress bar."""

    def __init__(self, progress: Progress, task) -> None:
        self._progress, self._task = progress, task

    def update(self, done: int, failed: int) -> None:
        self._progress.update(self._task, completed=done + failed, failed=failed)
