"""The sweep's progress display (rich): a bar while on a terminal, one line per trial everywhere."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from orchestrator.measuring import results
from orchestrator.running.scheduler import Progress as ProgressProtocol


class RichProgress(ProgressProtocol):
    def __init__(self):
        self.console = Console(file=sys.stdout, highlight=False, soft_wrap=True)
        self._bar = None
        self._task = None

    def start(self, total: int) -> None:
        if self.console.is_terminal:
            self._bar = Progress(
                SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), console=self.console, transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task("starting", total=total)

    def trial_started(self, plan, index: int) -> None:
        text = f"{plan.framework} {plan.strategy} · {plan.workers} worker(s) · repeat {plan.repeat + 1}"
        if self._bar:
            self._bar.update(self._task, description=text)
        else:
            self.console.print(f"→ {text}")

    def trial_skipped(self, plan) -> None:
        self.console.print(f"[dim]↷ {plan.trial_id}: already in results.jsonl[/]")
        if self._bar:
            self._bar.advance(self._task)

    def trial_ended(self, plan, record: dict) -> None:
        if record["status"] == "ok":
            trial = results.parse(record)
            shown = f"{trial.throughput:,.4g} {trial.unit}"
            ms = 1000 * record["step_time_mean_s"]
            step = f"{ms:.2f} ms between reports" if trial.metric == "reports_per_sec" else f"step {ms:.2f} ms"
            accuracy = record.get("test_accuracy")
            extra = f", test accuracy {accuracy:.3f}" if accuracy is not None else ""
            self.console.print(
                f"[green]✓[/] {plan.trial_id}: {shown}, {step}{extra} "
                f"[dim]({record['wall_time_s']:.0f} s)[/]"
            )
        else:
            self.console.print(f"[red]✗[/] {plan.trial_id}: {escape(record['error'])}")
        if self._bar:
            self._bar.advance(self._task)

    def note(self, text: str) -> None:
        self.console.print(f"[yellow]note:[/] {escape(text)}")

    def stop(self) -> None:
        if self._bar:
            self._bar.stop()
