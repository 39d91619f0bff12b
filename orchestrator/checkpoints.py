"""Per-trial checkpoints (labelled rows in order + rng state), written atomically as JSON."""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import asdict
from pathlib import Path

from workers.trajectory import Checkpoint


class CheckpointStore:
    """One JSON file per trial key; the driver writes one after its metrics are in MLflow."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _path(self, trial_key: str) -> Path:
        return self.root / f"{trial_key}.json"

    def save(self, trial_key: str, checkpoint: Checkpoint) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        target = self._path(trial_key)
        temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        temporary.write_text(json.dumps(asdict(checkpoint)))
        os.replace(temporary, target)

    def load(self, trial_key: str) -> Checkpoint | None:
        try:
            data = json.loads(self._path(trial_key).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return Checkpoint(cycle=data["cycle"], labelled_order=data["labelled_order"],
                          rng_state=data["rng_state"])

    def remove(self, trial_key: str) -> None:
        self._path(trial_key).unlink(missing_ok=True)
