"""The ``albench`` command line: run, embed, status, validate, schema, ui."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import typer
from rich.console import Console

from orchestrator.config import ConfigError, ExperimentConfig, config_schema, load_config

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Benchmark active-learning strategies on frozen text embeddings.")
console = Console(width=None if sys.stdout.isatty() else 140)
EXIT_CONFIG = 2
EXIT_FAILED_TRIALS = 1
EXIT_INTERRUPTED = 130


def _load(path: Path) -> ExperimentConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(EXIT_CONFIG) from None


def _plan(config: ExperimentConfig):
    from orchestrator.grid import prepare_plan

    try:
        return prepare_plan(config)
    except ConfigError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(EXIT_CONFIG) from None


def _tracker(config: ExperimentConfig):
    from orchestrator.tracking import Tracker

    return Tracker(config.tracking.uri, config.experiment_name)


@app.command()
def validate(config_path: Path = typer.Argument(..., metavar="CONFIG")) -> None:
    """Parse CONFIG, load its datasets, expand the grid; print counts, run nothing."""
    config = _load(config_path)
    plan = _plan(config)
    console.print(f"{config.name}: {len(plan.trials)} trials "
                  f"({len(config.datasets)} datasets x {len(config.embedders)} embedders x "
                  f"{len(config.initial_pools)} initial pools x {len(config.strategies)} strategies "
                  f"x {len(config.seeds)} seeds), {len(plan.jobs)} embedding jobs, "
                  f"{config.protocol.n_cycles} query cycles of {config.protocol.query_size}")


@app.command()
def embed(config_path: Path = typer.Argument(..., metavar="CONFIG")) -> None:
    """Run only the embedding stage: fill the store with what CONFIG needs."""
    from orchestrator.runner import embedding_stage, init_ray
    from workers.store import EmbeddingStore

    config = _load(config_path)
    plan = _plan(config)
    init_ray()
    embedding_stage(plan, EmbeddingStore(config.store.path), console)
    console.print(f"store: {config.store.path.resolve()}")


@app.command()
def run(
    config_path: Path = typer.Argument(..., metavar="CONFIG"),
    force: bool = typer.Option(False, "--force", help="Rerun every trial, even finished ones."),
    rerun_failed: bool = typer.Option(
        True, "--rerun-failed/--only-missing",
        help="Rerun FAILED/KILLED trials (default), or run only trials with no run at all.",
    ),
) -> None:
    """Embed what is missing and run every trial without a FINISHED run; print the AUC table."""
    from orchestrator.report import auc_table
    from orchestrator.runner import init_ray, run_grid

    config = _load(config_path)
    plan = _plan(config)
    init_ray()
    tracker = _tracker(config)
    try:
        summary = run_grid(plan, tracker, console, force=force, rerun_failed=rerun_failed)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: in-flight trials marked KILLED; rerun to resume[/yellow]")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    console.print(auc_table(plan.trials, tracker.trial_runs()))
    console.print(f"finished {summary.finished}, skipped {summary.skipped}, failed {len(summary.failed)}")
    for trial, error in summary.failed:
        console.print(f"[red]FAILED[/red] {trial.dataset} / {trial.embedder} / "
                      f"{trial.initial_pool.label} / {trial.strategy.label} / seed {trial.seed}: {error}",
                      highlight=False)
    console.print(f"MLflow: experiment {config.experiment_name!r} at {config.tracking.uri} "
                  f"(open it with: albench ui {config_path})")
    if summary.failed:
        raise typer.Exit(EXIT_FAILED_TRIALS)


@app.command()
def status(config_path: Path = typer.Argument(..., metavar="CONFIG")) -> None:
    """Done / failed / running / pending trials per dataset and embedder, from MLflow."""
    from orchestrator.report import status_counts

    config = _load(config_path)
    plan = _plan(config)
    table, failed = status_counts(plan.trials, _tracker(config).trial_runs())
    console.print(table)
    for trial, error in failed:
        console.print(f"[red]failed[/red] {trial.trial_key} {trial.dataset} / {trial.embedder} / "
                      f"{trial.initial_pool.label} / {trial.strategy.label} / seed {trial.seed}: "
                      f"{error.splitlines()[0] if error else ''}", highlight=False)


@app.command()
def schema() -> None:
    """Print the JSON schema of the config (with the registered strategy names)."""
    print(json.dumps(config_schema(), indent=2))


@app.command()
def ui(
    config_path: Path = typer.Argument(None, metavar="[CONFIG]"),
    host: str = typer.Option("127.0.0.1", help="Interface to bind (loopback by default)."),
    port: int = typer.Option(5000, help="Port of the MLflow UI."),
) -> None:
    """Open the MLflow UI on the config's tracking store (default sqlite:///mlflow.db)."""
    uri = _load(config_path).tracking.uri if config_path else "sqlite:///mlflow.db"
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
               "--host", host, "--port", str(port)]
    console.print(f"MLflow UI on http://{host}:{port} ({uri})")
    raise typer.Exit(subprocess.call(command, env={**os.environ}))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
