"""The trajectory stage: trials fanned out to an actor pool, their cycles streamed to the tracker.

One trial's exception never stops the grid: its run is FAILED with the error as the
``albench.error`` tag and the traceback as ``error.txt``. A trial whose worker dies is
resubmitted from its latest checkpoint (at most ``MAX_ACTOR_RESTARTS_PER_TRIAL`` times). Ctrl-C
(or SIGTERM) stops cleanly: streamed cycles are logged and checkpointed, in-flight runs are
marked KILLED, actors are killed.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from dataclasses import dataclass, field

from orchestrator.actor_pool import ActorPool, Failed, Finished, Lost, Streamed
from orchestrator.cluster import live_nodes, slots
from orchestrator.console import Reporter
from orchestrator.ray_runtime import critical
from orchestrator.tracking.writer import TrackingWriteError
from orchestrator.trial_log import Recording, TrialLog
from workers.specs import TrialSpec
from workers.trajectory import TrialData

FLUSH_SECONDS = 1.0
"""How often the cycles streamed in are handed to the tracker (one write per running trial)."""
OUTBOX_SIZE = 256
"""Ended trials that make the driver hand its writes over before the second is up."""
MAX_ACTOR_RESTARTS_PER_TRIAL = 3
"""Actor deaths one trial may suffer before it is recorded FAILED (a trial that kills its
worker every time, e.g. out of memory, must not loop forever)."""
WAITING_NOTICE_SECONDS = 30.0
INTERRUPT_WRITE_SECONDS = 20.0
"""How long an interrupted driver waits for its last writes (KILLED marks) before it stops."""


@dataclass
class RunSummary:
    """What a run did, for the final report and the exit code."""

    finished: int = 0
    skipped: int = 0
    resumed: int = 0
    resubmitted: int = 0
    failed: list[tuple[TrialSpec, str]] = field(default_factory=list)
    interrupted: bool = False
    single_class: list[tuple[TrialSpec, int]] = field(default_factory=list)
    """Finished trials with cycles where the learner predicted one class for every test row."""


def actor_count(resources) -> int:
    """Trajectory actors to start: ``max_concurrency``, else as many as the nodes' CPUs fit
    (each actor on one node)."""
    return resources.max_concurrency or max(1, slots(live_nodes(), resources.cpus_per_trajectory))


def run_trajectories(trials: list[TrialSpec], data: dict[str, TrialData], recording: Recording,
                     resources, reporter: Reporter, summary: RunSummary) -> None:
    """Run ``trials`` to the end (or to their failure) on a pool of actors."""
    pool = ActorPool(data, size=actor_count(resources), cpus=resources.cpus_per_trajectory)
    logs = [TrialLog(trial, recording) for trial in trials]
    queue: deque[TrialLog] = deque(logs)
    pool.start(len(trials))
    last_flush = time.monotonic()
    warned = False
    with reporter.trial_progress(len(trials)) as bar:
        try:
            while queue or pool.busy:
                while pool.has_idle and queue:
                    log = queue.popleft()
                    with critical():  # a run opened is a run the driver ends
                        log.ran_on(pool.submit(log, log.trial, log.begin()))
                for outcome in pool.wait(timeout=FLUSH_SECONDS):
                    log = outcome.ticket
                    if isinstance(outcome, Streamed):
                        log.add(outcome.records)
                        continue
                    if isinstance(outcome, Finished):
                        result = log.finish()
                        summary.finished += 1
                        if result["single_class_cycles"]:
                            summary.single_class.append((log.trial, int(result["single_class_cycles"])))
                    elif isinstance(outcome, Failed):
                        _fail(log, outcome.error, outcome.trace, summary)
                    elif isinstance(outcome, Lost):
                        if (write := log.flush()) is not None:
                            recording.outbox.append(write)
                        log.restarts += 1
                        if log.restarts > MAX_ACTOR_RESTARTS_PER_TRIAL:
                            _fail(log, f"its trajectory worker died {log.restarts} times "
                                  f"(last: {outcome.why})", outcome.trace, summary)
                        else:
                            summary.resubmitted += 1
                            reporter.worker_lost(outcome.why, log.trial)
                            queue.appendleft(log)
                    bar.update(summary.finished, len(summary.failed))
                if (not warned and queue
                        and time.monotonic() - pool.last_activity > WAITING_NOTICE_SECONDS):
                    warned = True
                    reporter.waiting_for_actors(len(queue), resources.cpus_per_trajectory)
                if time.monotonic() - last_flush >= FLUSH_SECONDS or len(recording.outbox) >= OUTBOX_SIZE:
                    recording.check_lease()
                    recording.send([w for log in pool.running() if (w := log.flush()) is not None])
                    if recording.figures is not None:
                        recording.figures.tick()
                    last_flush = time.monotonic()
            recording.send()
            recording.writer.drain()
        except KeyboardInterrupt:
            # Every run this session opened and did not end is marked KILLED, also one whose
            # trial was between its actors (just opened, or back in the queue after a lost worker).
            summary.interrupted = True
            pool.close()
            if recording.lease is None or not recording.lease.lost.is_set():
                with critical():
                    for log in logs:
                        if log.open:
                            log.interrupt()
                    with contextlib.suppress(TrackingWriteError):  # the interrupt wins; a run
                        recording.send()                            # left RUNNING resumes too
                        recording.writer.drain(timeout=INTERRUPT_WRITE_SECONDS)
            raise
        finally:
            pool.close()


def _fail(log: TrialLog, error: str, trace: str, summary: RunSummary) -> None:
    log.fail(error, trace)
    summary.failed.append((log.trial, error))
