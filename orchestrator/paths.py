"""Relative paths in a config file mean relative to that file's folder, not to the working
directory: the local paths of dataset sources (each source resolves its own:
``DatasetSource.resolve_paths``), local embedder folders, ``store.path``, ``store.checkpoints`` (unless
they are object-store URIs) and a ``sqlite:///relative.db`` tracking URI. ``albench run ../x/experiments.yaml`` then reads and
writes what ``cd ../x && albench run experiments.yaml`` does.

In the same fields ``~`` is the home folder and ``$VAR`` / ``${VAR}`` the value of an environment
variable (as a shell expands them; ``$$`` is a literal ``$``); a variable that is not set is refused (``ConfigError``
naming the field and the variable), never kept as a literal folder name.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.config import ConfigError, ExperimentConfig
from workers.embedders.resolve import looks_like_path
from workers.fs import PathError, absolute_path, expand


def _sqlite(uri: str, base: Path) -> str:
    prefix = "sqlite:///"
    if not uri.startswith(prefix) or uri[len(prefix):] in ("", ":memory:"):
        return uri
    path = Path(str(expand(uri[len(prefix):], "tracking.uri"))).expanduser()
    return f"{prefix}{path if path.is_absolute() else base / path}"


def resolve_paths(config: ExperimentConfig, base: Path) -> ExperimentConfig:
    """``config`` with every relative path made absolute against ``base`` (the config's folder)."""
    try:
        return _resolved(config, Path(base).absolute())
    except PathError as exc:
        raise ConfigError(str(exc)) from None


def _resolved(config: ExperimentConfig, base: Path) -> ExperimentConfig:
    datasets = [spec.model_copy(update={"source": spec.source.resolve_paths(base, f"datasets[{index}].source")})
                for index, spec in enumerate(config.datasets)]
    embedders = []
    for entry in config.embedders:
        model = expand(entry.model, f"embedders[{entry.name}].model")
        if looks_like_path(model) and not Path(model).expanduser().is_absolute():
            model = str(absolute_path(Path(model), base, f"embedders[{entry.name}].model"))
        embedders.append(entry.model_copy(update={"model": model}) if model != entry.model else entry)
    store = config.store.model_copy(update={
        "path": absolute_path(config.store.path, base, "store.path"),
        "checkpoints": absolute_path(config.store.checkpoints, base, "store.checkpoints")})
    tracking = config.tracking.model_copy(update={"uri": _sqlite(config.tracking.uri, base)})
    return config.model_copy(update={"datasets": datasets, "embedders": embedders, "store": store,
                                      "tracking": tracking})
