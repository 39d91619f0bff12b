"""Relative paths in a config file mean relative to that file's folder, not to the working
directory: ``source.train``/``source.test`` of file datasets, a local ``source.path`` of
Hugging Face datasets, local embedder folders, ``store.path``, ``store.checkpoints`` (unless
they are object-store URIs) and a ``sqlite:///relative.db`` tracking URI. ``albench run ../x/experiments.yaml`` then reads and
writes what ``cd ../x && albench run experiments.yaml`` does.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.config import ExperimentConfig
from workers.embedders.resolve import looks_like_path
from workers.fs import is_remote


def _absolute(path: Path | str | None, base: Path) -> Path | str | None:
    if path is None or is_remote(path):
        return path
    path = Path(path).expanduser()
    return path if path.is_absolute() else base / path


def _sqlite(uri: str, base: Path) -> str:
    prefix = "sqlite:///"
    if not uri.startswith(prefix) or uri.startswith("sqlite:////") or uri[len(prefix):] in ("", ":memory:"):
        return uri
    return f"{prefix}{base / uri[len(prefix):]}"


def resolve_paths(config: ExperimentConfig, base: Path) -> ExperimentConfig:
    """``config`` with every relative path made absolute against ``base`` (the config's folder)."""
    base = Path(base).absolute()
    datasets = []
    for spec in config.datasets:
        source = spec.source
        if source.type == "file":
            source = source.model_copy(update={"train": _absolute(source.train, base),
                                               "test": _absolute(source.test, base)})
        elif source.type == "huggingface" and source.path.startswith(("./", "../")):
            source = source.model_copy(update={"path": str(base / source.path)})
        datasets.append(spec.model_copy(update={"source": source}))
    embedders = [e.model_copy(update={"model": str(_absolute(Path(e.model), base))})
                 if looks_like_path(e.model) and not Path(e.model).expanduser().is_absolute() else e
                 for e in config.embedders]
    store = config.store.model_copy(update={"path": _absolute(config.store.path, base),
                                            "checkpoints": _absolute(config.store.checkpoints, base)})
    tracking = config.tracking.model_copy(update={"uri": _sqlite(config.tracking.uri, base)})
    return config.model_copy(update={"datasets": datasets, "embedders": embedders, "store": store,
                                      "tracking": tracking})
