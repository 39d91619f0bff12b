"""Relative paths in a config file mean relative to that file's folder, not to the working
directory: ``source.train``/``source.test`` of file datasets, a local ``source.path`` of
Hugging Face datasets, local embedder folders, ``store.path``, ``store.checkpoints`` (unless
they are object-store URIs) and a ``sqlite:///relative.db`` tracking URI. ``albench run ../x/experiments.yaml`` then reads and
writes what ``cd ../x && albench run experiments.yaml`` does.

In the same fields ``~`` is the home folder and ``$VAR`` / ``${VAR}`` the value of an environment
variable (as a shell expands them; ``$$`` is a literal ``$``); a variable that is not set is refused (``ConfigError``
naming the field and the variable), never kept as a literal folder name.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from orchestrator.config import ConfigError, ExperimentConfig
from workers.embedders.resolve import looks_like_path
from workers.fs import is_remote

_VARIABLE = re.compile(r"\$(\$|\w+|\{([^}]*)\})")


def expand(value: Path | str | None, field: str) -> Path | str | None:
    """``value`` with ``$VAR`` and ``${VAR}`` replaced by the environment's values (the type
    kept); an unset (or malformed) variable is a ``ConfigError`` naming ``field``."""
    if value is None or "$" not in str(value):
        return value

    def one(match: re.Match) -> str:
        if match.group(1) == "$":
            return "$"  # $$: a literal dollar sign
        name = match.group(2) if match.group(2) is not None else match.group(1)
        if not re.fullmatch(r"[A-Za-z_]\w*", name) or name not in os.environ:
            raise ConfigError(
                f"{field}: {str(value)!r} uses the environment variable {match.group(0)}, which is "
                + ("not a variable name" if not re.fullmatch(r"[A-Za-z_]\w*", name) else "not set")
                + f"; fix: set it (export {name or 'NAME'}=...) or write the path out in {field}")
        return os.environ[name]
    expanded = _VARIABLE.sub(one, str(value))
    return Path(expanded) if isinstance(value, Path) else expanded


def _absolute(path: Path | str | None, base: Path, field: str) -> Path | str | None:
    path = expand(path, field)
    if path is None or is_remote(path):
        return path
    path = Path(path).expanduser()
    return path if path.is_absolute() else base / path


def _sqlite(uri: str, base: Path) -> str:
    prefix = "sqlite:///"
    if not uri.startswith(prefix) or uri[len(prefix):] in ("", ":memory:"):
        return uri
    path = Path(str(expand(uri[len(prefix):], "tracking.uri"))).expanduser()
    return f"{prefix}{path if path.is_absolute() else base / path}"


def resolve_paths(config: ExperimentConfig, base: Path) -> ExperimentConfig:
    """``config`` with every relative path made absolute against ``base`` (the config's folder)."""
    base = Path(base).absolute()
    datasets = []
    for spec in config.datasets:
        source, at = spec.source, f"datasets[{spec.name}].source"
        if source.type == "file":
            source = source.model_copy(update={"train": _absolute(source.train, base, f"{at}.train"),
                                               "test": _absolute(source.test, base, f"{at}.test")})
        elif source.type == "huggingface":
            path = expand(source.path, f"{at}.path")
            source = source.model_copy(update={"path": str(base / path) if path.startswith(("./", "../"))
                                               else path})
        datasets.append(spec.model_copy(update={"source": source}))
    embedders = []
    for entry in config.embedders:
        model = expand(entry.model, f"embedders[{entry.name}].model")
        if looks_like_path(model) and not Path(model).expanduser().is_absolute():
            model = str(_absolute(Path(model), base, f"embedders[{entry.name}].model"))
        embedders.append(entry.model_copy(update={"model": model}) if model != entry.model else entry)
    store = config.store.model_copy(update={
        "path": _absolute(config.store.path, base, "store.path"),
        "checkpoints": _absolute(config.store.checkpoints, base, "store.checkpoints")})
    tracking = config.tracking.model_copy(update={"uri": _sqlite(config.tracking.uri, base)})
    return config.model_copy(update={"datasets": datasets, "embedders": embedders, "store": store,
                                      "tracking": tracking})
