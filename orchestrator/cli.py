"""The ``albench`` command line: run, embed, status, report, validate, schema, ui.

Every expected failure is one clear message and a non-zero exit code (2 for bad input, before
anything is written). An unexpected one says so, keeps its traceback in a log file instead of
the screen, and says where to report it.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import tempfile
import traceback
from pathlib import Path

import typer

from orchestrator.config import ConfigError, ExperimentConfig, config_schema, load_config
from orchestrator.console import Reporter, describe, plural

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Benchmark active-learning strategies on frozen text embeddings.")
reporter = Reporter()
EXIT_CONFIG = 2
EXIT_FAILED_TRIALS = 1
EXIT_INTERRUPTED = 130
EXIT_INTERNAL = 70
REPORT_TO = ("please send the command, your config and that file to albench's maintainers (an issue "
             "in the repository you installed albench from)")
"""Where an internal error is reported: albench has no address of its own to name."""


def _or_exit(step, argument):
    """Run a config step; a ConfigError is printed and exits with code 2 before anything ran."""
    try:
        return step(argument)
    except ConfigError as exc:
        reporter.error(str(exc))
        raise typer.Exit(EXIT_CONFIG) from None


def _load(path: Path) -> ExperimentConfig:
    from orchestrator.plugins import problems

    for problem in problems():  # a plug-in left out: said once, the built-ins work on
        reporter.warn(f"warning: {problem}")
    return _or_exit(load_config, path)


def _plan(config: ExperimentConfig, writing: bool = True):
    from orchestrator.grid import prepare_plan

    plan = _or_exit(lambda c: prepare_plan(c, writing=writing), config)
    for warning in plan.warnings:
        reporter.warn(f"warning: {warning}")
    return plan


def _tracker(config: ExperimentConfig, create: bool = True):
    """The config's tracker; a tracking URI that cannot work exits 2 with the fix."""
    from orchestrator.tracking import TrackingURIError, open_tracker

    try:
        return open_tracker(config.tracking.uri, config.experiment_name, config.tracking.backend,
                            create=create)
    except TrackingURIError as exc:
        reporter.error(str(exc))
        raise typer.Exit(EXIT_CONFIG) from None


@app.command()
def validate(
    config_path: Path = typer.Argument(..., metavar="CONFIG"),
    offline: bool = typer.Option(False, "--offline", help="Check schema, grid and names without "
                                 "loading datasets or models (nothing reaches the hub)."),
) -> None:
    """Parse CONFIG, load its datasets, expand the grid; print counts, run nothing."""
    config = _load(config_path)
    if offline:
        _validate_offline(config)
        return
    plan = _plan(config)
    reporter.say(f"{config.name}: {len(plan.trials)} trials "
                 f"({len(config.datasets)} datasets x {len(config.embedders)} embedders x "
                 f"{len(config.initial_pools)} initial pools x {len(config.strategies)} strategies "
                 f"x {len(config.seeds)} seeds), {len(plan.jobs)} embedding jobs, "
                 f"{config.protocol.n_cycles} query cycles of {config.protocol.query_size}")


def _validate_offline(config) -> None:
    """Every embedder resolved (names, hub ids, local folders; no model loaded), every Hugging
    Face dataset id well formed, the grid counted; problems exit with the config code."""
    from orchestrator.preflight import offline_problems

    problems, warnings = offline_problems(config)
    for warning in warnings:
        reporter.warn(warning)
    if problems:
        for problem in problems:
            reporter.error(problem)
        raise typer.Exit(EXIT_CONFIG)
    reporter.say(f"{config.name}: valid offline (schema, grid, names; datasets and models not "
                 f"loaded): {config.n_trials} trials ({len(config.datasets)} datasets x "
                 f"{len(config.embedders)} embedders x {len(config.initial_pools)} initial pools x "
                 f"{len(config.strategies)} strategies x {len(config.seeds)} seeds), "
                 f"{len(config.datasets) * len(config.embedders)} embedding jobs, "
                 f"{config.protocol.n_cycles} query cycles of {config.protocol.query_size}")


@app.command()
def embed(config_path: Path = typer.Argument(..., metavar="CONFIG")) -> None:
    """Run only the embedding stage: fill the store with what CONFIG needs."""
    from orchestrator.cluster import check_resources
    from orchestrator.embedding_stage import embedding_stage, record_stage
    from orchestrator.ray_runtime import ClusterConnectError, init_ray
    from workers.store import EmbeddingStore

    config = _load(config_path)
    plan = _plan(config)
    tracker = _tracker(config)  # a tracking URI that cannot work stops it before any work
    try:
        init_ray()
        check_resources(config.resources, reporter)
    except (ConfigError, ClusterConnectError) as exc:
        reporter.error(str(exc))
        raise typer.Exit(EXIT_CONFIG) from None
    store = EmbeddingStore(config.store.path)
    try:
        result = embedding_stage(plan.jobs, plan.datasets, store, config.resources, reporter)
    except OSError as exc:
        _stopped(exc, config_path)
    record_stage(tracker, result)
    reporter.say(f"store: {store.root.resolve()}")
    if result.errors:
        raise typer.Exit(EXIT_FAILED_TRIALS)


@app.command()
def run(
    config_path: Path = typer.Argument(..., metavar="CONFIG"),
    force: bool = typer.Option(False, "--force",
                               help="Rerun every trial from scratch, even finished ones (their "
                                    "old runs are deleted in MLflow once the new ones finish)."),
    rerun_failed: bool = typer.Option(
        True, "--rerun-failed/--only-missing",
        help="Rerun FAILED trials too (default), or skip them and run only trials without a run "
             "or interrupted ones. Interrupted trials always resume from their checkpoint.",
    ),
    no_report: bool = typer.Option(False, "--no-report",
                                   help="Do not build the HTML report (reports/<name>/) at the end."),
) -> None:
    """Run every trial of CONFIG that has no FINISHED run (resuming interrupted ones from their
    last completed cycle), embedding only what they need; print the AUC table and build the
    report (``albench report``) unless ``--no-report``.

    Exit code: 0 all done, 1 some trials failed, 2 bad config, grid locked or a cluster that cannot
    run it (see ``orchestrator.cluster``), 130 interrupted.
    """
    from orchestrator.checkpoints import GridLockedError
    from orchestrator.ray_runtime import ClusterConnectError
    from orchestrator.report import auc_table
    from orchestrator.runner import run_grid
    from orchestrator.tracking import GridHeldError, masked
    from orchestrator.tracking.writer import TrackingWriteError

    config = _load(config_path)
    plan = _plan(config)
    tracker = _tracker(config)
    try:
        summary = run_grid(plan, tracker, reporter, force=force, rerun_failed=rerun_failed,
                           sigterm_as_interrupt=True)
    except (GridLockedError, GridHeldError, ConfigError, ClusterConnectError) as exc:
        reporter.error(str(exc))
        raise typer.Exit(EXIT_CONFIG) from None
    except (TrackingWriteError, OSError) as exc:  # a store that stopped answering mid-run
        _stopped(exc, config_path)
    except KeyboardInterrupt:
        reporter.warn("interrupted: in-flight trials marked KILLED, finished cycles kept; "
                      f"rerun `albench run {config_path}` to resume")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    reporter.show(auc_table(plan.trials, tracker.trial_runs(with_params=False)))
    notes = []
    if summary.resumed:
        notes.append(f"{summary.resumed} continued an interrupted or failed run")
    if summary.resubmitted:
        notes.append(f"{summary.resubmitted} resubmitted after a lost worker")
    reporter.say(f"finished {summary.finished}, failed {len(summary.failed)}, skipped "
                 f"{summary.skipped} (already done)" + (f"; {', '.join(notes)}" if notes else ""))
    for trial, error in summary.failed:
        reporter.tagged("FAILED", "red", f"{describe(trial)}: {_first_line(error)}")
    if summary.single_class:
        cycles = sum(n for _, n in summary.single_class)
        first = summary.single_class[0]
        reporter.warn(f"warning: in {plural(len(summary.single_class), 'trial')} ({plural(cycles, 'cycle')}) "
                      "the learner "
                      "predicted one class for every test row (metric predicted_classes, tag "
                      f"albench.warnings.learner), e.g. {describe(first[0])}: {plural(first[1], 'cycle')}")
    shown = masked(config.tracking.uri)
    where = (f"its UI is the server's: {shown}"
             if shown.startswith(("http://", "https://")) else f"open it with: albench ui {config_path}")
    reporter.say(f"MLflow: experiment {config.experiment_name!r} at {shown} ({where})")
    if not no_report:
        _report_after_run(config_path, config, plan, tracker)
    if summary.failed:
        reporter.say(f"{len(summary.failed)} trials failed (error and traceback in their MLflow "
                     f"runs, `albench status {config_path}` lists them); `albench run` reruns them")
        raise typer.Exit(EXIT_FAILED_TRIALS)


@app.command()
def status(config_path: Path = typer.Argument(..., metavar="CONFIG")) -> None:
    """Done / failed / running / pending trials per dataset and embedder, from MLflow."""
    from orchestrator.checkpoints import CheckpointStore
    from orchestrator.preflight import store_problems
    from orchestrator.report import grid_status
    from workers.store import EmbeddingStore

    config = _load(config_path)
    plan = _plan(config, writing=False)
    tracker = _tracker(config, create=False)  # a read-only command creates no store, no experiment
    if problems := store_problems(config, writing=False):  # an object store it cannot read
        for problem in problems:
            reporter.error(problem)
        raise typer.Exit(EXIT_CONFIG)
    checkpoints = CheckpointStore(config.store.checkpoints)
    cycles = {}
    for key in checkpoints.trial_keys():
        found = checkpoints.load(key)
        if found is not None:
            cycles[key] = found.cycle
    store = EmbeddingStore(config.store.path)
    stored = {(j.dataset_name, j.embedder.name): store.find(j) is not None for j in plan.jobs}
    driver_running = checkpoints.locked() or tracker.lease_holder() is not None
    result = grid_status(plan.trials, tracker.trial_runs(with_params=False), driver_running=driver_running,
                         checkpoints=cycles, stored=stored)
    reporter.show(result.table)
    totals = result.totals
    reporter.say(f"{len(plan.trials)} trials: {totals['done']} done, {totals['failed']} failed, "
                 f"{totals['running']} running, {totals['pending']} pending"
                 + ("" if driver_running else " (no albench run is active)"))
    for trial, error in result.failed:
        reporter.tagged("failed", "red", f"{trial.trial_key} {describe(trial)}: {_first_line(error)}")
    shown = 20
    for trial, why in result.interrupted[:shown]:
        reporter.tagged("interrupted", "yellow", f"{trial.trial_key} {describe(trial)}: {why}")
    if len(result.interrupted) > shown:
        reporter.say(f"... and {len(result.interrupted) - shown} more interrupted trials")
    if result.interrupted and not driver_running:
        reporter.say(f"`albench run {config_path}` resumes interrupted trials from their checkpoints")


@app.command()
def report(
    config_path: Path = typer.Argument(..., metavar="CONFIG"),
    out: Path = typer.Option(None, "--out", help="Folder to write (default: reports/<name>/ next to CONFIG)."),
    open_it: bool = typer.Option(False, "--open", help="Open index.html in the default browser."),
) -> None:
    """Build the HTML report of CONFIG's grid (also of one still running or partly failed):
    index.html, figures/, results.parquet, curves.parquet, stats.json. Reads MLflow; writes only
    the experiment's report run (its artifacts: the report), and only when the experiment exists."""
    from orchestrator.preflight import folder_problem
    from orchestrator.report.build import build_report, default_report_dir

    config = _load(config_path)
    plan = _plan(config, writing=False)
    tracker = _tracker(config, create=False)  # read-only: creates no store, no experiment
    folder = out or default_report_dir(config, config_path.parent)
    if problem := folder_problem("--out" if out else "the report folder", folder):
        reporter.error(problem + ("" if out else " (or give --out DIR)"))
        raise typer.Exit(EXIT_CONFIG)
    folder = build_report(config, tracker, plan, folder)
    _said_report(folder, config, tracker)
    if open_it:
        from orchestrator.report.publish import open_in_browser

        if (why := open_in_browser(folder / "index.html")) is not None:
            reporter.say(why)


def _report_after_run(config_path: Path, config, plan, tracker) -> None:
    """The report at the end of ``albench run``; a failure to build it is said, not fatal."""
    from orchestrator.report.build import build_report, default_report_dir

    try:
        folder = build_report(config, tracker, plan, default_report_dir(config, config_path.parent))
        _said_report(folder, config, tracker)
    except Exception as exc:  # noqa: BLE001 - the grid's results are recorded; the report is extra
        log = _internal_error_log(exc)
        reporter.warn(f"warning: the report could not be built ({type(exc).__name__}: {exc}); the results "
                      f"are in MLflow, `albench report {config_path}` retries; traceback in {log}")


def _said_report(folder: Path, config, tracker) -> None:
    """Say where the report is, and log it to the experiment's report run (the MLflow UI links
    to it) when the experiment exists."""
    from orchestrator.report.publish import publish_report

    reporter.say(f"report: {(folder / 'index.html').resolve()} (figures, results.parquet, curves.parquet, "
                 "stats.json beside it)")
    if tracker.exists:
        from orchestrator.tracking import TrackingURIError

        try:
            run_id = publish_report(config, tracker, folder)
        except TrackingURIError as exc:  # a read-only grid
            reporter.warn(f"warning: the report was not logged to MLflow: {exc}; it is complete in "
                          "the folder above")
            return
        reporter.say(f"report logged to MLflow: run {run_id} (named 'report') of {config.experiment_name!r}")


@app.command("migrate-db")
def migrate_db(uri: str = typer.Argument(..., metavar="URI", help="The tracking URI (tracking.uri) "
                                         "of a database written by an older MLflow.")) -> None:
    """Migrate a database of an older MLflow to this MLflow's schema (one way): a SQLite file is
    copied aside first; any other database: take a backup first. Nothing else is changed."""
    from orchestrator.tracking import TrackingURIError
    from orchestrator.tracking.mlflow_schema import migrate_database

    try:
        reporter.say(migrate_database(uri))
    except TrackingURIError as exc:
        reporter.error(str(exc))
        raise typer.Exit(EXIT_CONFIG) from None


@app.command()
def schema() -> None:
    """Print the JSON schema of the config and every registered thing of each kind, plug-ins
    included (``x-plugins``); a plug-in that could not be loaded is named on stderr."""
    schema = config_schema()
    for problem in schema["x-plugin-problems"]:
        print(f"warning: {problem}", file=sys.stderr)
    print(json.dumps(schema, indent=2))


@app.command()
def ui(
    config_path: Path = typer.Argument(None, metavar="[CONFIG]"),
    host: str = typer.Option("127.0.0.1", help="Interface to bind (loopback by default)."),
    port: int = typer.Option(5000, help="Port of the MLflow UI."),
    workers: int = typer.Option(1, help="Server worker processes (one is plenty for one user)."),
) -> None:
    """Open the MLflow UI on the config's tracking store (default sqlite:///mlflow.db)."""
    from orchestrator.ui import PortBusyError, serve

    config = _load(config_path) if config_path else None
    uri = config.tracking.uri if config is not None else "sqlite:///mlflow.db"
    from orchestrator.tracking import masked

    reporter.say(f"MLflow UI on http://{host}:{port} ({masked(uri)})")
    if config is not None and (link := _tracker(config, create=False).ui_link(f"http://{host}:{port}")):
        reporter.say(f"the grid's runs: {link}")
    try:
        code = serve(uri, host, port, workers)
    except PortBusyError as exc:
        reporter.error(str(exc))
        raise typer.Exit(EXIT_CONFIG) from None
    if code not in (0, 130, 143):
        reporter.error(f"the MLflow UI stopped (exit code {code}); its output above says why")
    raise typer.Exit(code)


def _stopped(exc: BaseException, config_path: Path) -> None:
    """A store that stopped answering mid-run (tracking, embeddings, checkpoints): say what
    failed and that a rerun resumes; exit 1."""
    what = _first_line(str(exc))
    if isinstance(exc, OSError) and not what.startswith("store."):
        what = f"the embedding store or the checkpoints (store.path, store.checkpoints) failed: {what}"
    reporter.error(f"{what}; what was recorded is kept and the checkpoints match it: fix what is "
                   f"named here and rerun `albench run {config_path}` to resume")
    raise typer.Exit(EXIT_FAILED_TRIALS) from None


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""


def main() -> None:
    """The ``albench`` entry point."""
    try:
        app(standalone_mode=True)
    except Exception as exc:  # noqa: BLE001 - the last line of defence: log, say where, exit
        log = _internal_error_log(exc)
        reporter.error(f"internal error: {type(exc).__name__}: {exc}")
        reporter.say(f"This is a bug in albench, not in your input. The traceback is in {log}; "
                     f"{REPORT_TO}.")
        sys.exit(EXIT_INTERNAL)


def _internal_error_log(exc: BaseException) -> Path:
    """Write the traceback where the user can find it (``$ALBENCH_LOG_DIR``, else ./.albench/logs)."""
    from orchestrator.tracking.base import masked

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    lines = traceback.format_exception(exc)
    for folder in (os.environ.get("ALBENCH_LOG_DIR"), ".albench/logs", tempfile.gettempdir()):
        if not folder:
            continue
        try:
            path = Path(folder).absolute() / f"albench-error-{stamp}-{os.getpid()}.log"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(masked(f"albench {' '.join(sys.argv[1:])}\n\n" + "".join(lines)))
            return path
        except OSError:
            continue
    return Path("(no writable folder for the log)")


if __name__ == "__main__":
    main()
