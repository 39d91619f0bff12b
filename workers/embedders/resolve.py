"""Resolving ``EmbedderSpec.model`` to a ``ResolvedModel`` and its identity, without loading it.

``model`` takes one of three forms, tried in this order:

1. a built-in name (``BUILTIN_EMBEDDERS`` and the models of plug-in kinds: ``named_models``;
   matched case-insensitively);
2. a path to an existing local sentence-transformers folder (``./models/x``, ``/abs/x``, ``~/x``;
   a relative value is taken from the current directory);
3. a sentence-transformers hub id ``org/model`` (with ``revision``, a commit hash best).

Local folders and hub ids are models of the kind ``MODEL_KIND``; a built-in names its kind.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import os
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from workers.embedders.base import (
    IMPLEMENTATION_VERSION,
    KINDS,
    EmbedderError,
    EmbedderKind,
    ResolvedModel,
    field_name,
    identity_json,
    reject,
)
from workers.embedders.builtins import BUILTIN_EMBEDDERS, BuiltinEmbedderInfo
from workers.hashing import content_hash_of

if TYPE_CHECKING:
    from workers.specs import EmbedderSpec

MODEL_KIND = "sentence-transformers"
"""The kind that loads local folders and hub ids."""

# Hugging Face repo ids: "namespace/name", letters, digits, '-', '_', '.'.
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.\-]{0,95}$")


def resolve_model(spec: EmbedderSpec, device: str | None = None) -> ResolvedModel:
    """Find where ``spec.model`` comes from and compute its identity, without loading the model.

    ``identity`` holds the model content (built-in name + installed package version; for a local
    folder a sha256 of its files; for a hub id ``hub:<id>@<revision or 'main'>``) and every setting
    that changes the vectors (dim, normalize, store_dtype, and for sentence-transformers models
    max_seq_length, query_prompt and the compute precision). ``batch_size`` is not part of it.

    ``precision: auto`` means float16 on CUDA and float32 on CPU: pass ``device`` ('cpu' or
    'cuda') to resolve it in the identity; without ``device`` it stays 'auto'. Settings that do
    not apply to a built-in (query_prompt, revision, a different dim) raise ``EmbedderError``.
    """
    model = spec.model
    builtin = _builtin_names().get(model.lower())
    if builtin is not None:
        return _resolve_builtin(spec, builtin, device)

    candidate = Path(os.path.expanduser(model))
    if candidate.exists():
        return _resolve_local(spec, candidate, device)
    if looks_like_path(model):
        raise EmbedderError(
            f"{field_name(spec, 'model')}: the path {model!r} does not exist (resolved to "
            f"{str(candidate.absolute())!r} from the working directory {os.getcwd()!r}); fix: give "
            f"the path of a local sentence-transformers folder that exists on this machine, "
            f"a hub id 'org/model', or a built-in name ({', '.join(named_models())})."
        )
    if "/" in model:
        if not _HUB_ID.match(model):
            raise EmbedderError(
                f"{field_name(spec, 'model')}: {model!r} is not a valid hub id (expected 'org/model' "
                f"with letters, digits, '-', '_' or '.') and no such path exists; fix the id, or "
                f"give an existing local folder ('./path/to/model')."
            )
        return _resolve_hub(spec, device)
    raise _unknown_name_error(spec)


def kind_name(resolved: ResolvedModel) -> str:
    """The name of the registered kind that loads ``resolved``."""
    return named_models()[resolved.builtin].kind if resolved.builtin is not None else MODEL_KIND


def kind_of(resolved: ResolvedModel) -> EmbedderKind:
    """The registered kind that loads ``resolved``."""
    return KINDS.get(kind_name(resolved))()


# ----------------------------------------------------------------------------------- built-ins


def named_models() -> dict[str, BuiltinEmbedderInfo]:
    """Every model a config names by name: albench's built-ins, then the plug-in kinds' models."""
    models = dict(BUILTIN_EMBEDDERS)
    for kind in KINDS.values():
        models.update({name: info for name, info in kind.models.items() if name not in models})
    return models


def _builtin_names() -> dict[str, str]:
    return {name.lower(): name for name in named_models()}


def _resolve_builtin(spec: EmbedderSpec, name: str, device: str | None) -> ResolvedModel:
    info = named_models()[name]
    kind = KINDS.get(info.kind)()
    if spec.revision is not None:
        raise reject(
            spec, "revision", f"built-in {name!r} is pinned by its package version", "remove revision"
        )
    if not kind.takes_prompt:
        for field in ("query_prompt", "instruction", "prompt_name", "pooling", "padding_side"):
            if getattr(spec, field) is not None:
                raise reject(spec, field, f"built-in {name!r} does not take {field} "
                             "(sentence-transformers models only)", f"remove {field}")
        if spec.trust_remote_code or spec.model_kwargs.dtype or spec.model_kwargs.attn_implementation:
            raise reject(spec, "model_kwargs", f"built-in {name!r} loads no transformers model",
                         "remove model_kwargs and trust_remote_code")
    kind.check_builtin(spec, name, info)
    version = _builtin_version(spec, name)
    location = _builtin_location(spec, name)
    source = f"builtin:{name}/v{IMPLEMENTATION_VERSION}@{info.package}=={version}"
    dim = spec.dim or info.dim
    identity = identity_json(source, **kind.identity_settings(spec, dim, device))
    return ResolvedModel(
        kind="builtin", location=location, identity=identity, builtin=name, dim=dim
    )


def _missing_package(spec: EmbedderSpec, name: str, why: str) -> EmbedderError:
    info = named_models()[name]
    return EmbedderError(
        f"{field_name(spec, 'model')}: built-in {name!r} needs the package {info.package!r}, which "
        f"{why}; fix: pip install '{info.requirement or info.package}'"
    )


def _builtin_version(spec: EmbedderSpec, name: str) -> str:
    try:
        return importlib.metadata.version(named_models()[name].package)
    except importlib.metadata.PackageNotFoundError:
        raise _missing_package(spec, name, "is not installed") from None


def _builtin_location(spec: EmbedderSpec, name: str) -> str | None:
    """The package data folder of a built-in (imports only the tiny package module)."""
    data = named_models()[name].data
    if data is None:
        return None
    module, _, attribute = data.partition(":")
    try:
        value = getattr(importlib.import_module(module), attribute)
        return str(Path(value() if callable(value) else value).resolve())
    except ImportError:
        raise _missing_package(spec, name, "cannot be imported") from None


def _unknown_name_error(spec: EmbedderSpec) -> EmbedderError:
    names = ", ".join(named_models())
    by_lower = _builtin_names()
    close = difflib.get_close_matches(spec.model.lower(), list(by_lower), n=1, cutoff=0.6)
    hint = f" Did you mean {by_lower[close[0]]!r}?" if close else ""
    return EmbedderError(
        f"{field_name(spec, 'model')}: {spec.model!r} is not a built-in embedder, not an existing "
        f"path, and not a hub id.{hint} Give one of: a built-in name ({names}); a "
        f"sentence-transformers hub id 'org/model' (e.g. 'sentence-transformers/all-mpnet-base-v2', "
        f"pin it with revision:); or a path to a local sentence-transformers folder "
        f"(e.g. './models/my-model' or an absolute path)."
    )


# ----------------------------------------------------------------------- local folders, hub ids


def looks_like_path(value: str) -> bool:
    return (
        value in (".", "..")
        or value.startswith(("/", "./", "../", "~", ".\\", "..\\"))
        or "\\" in value
        or value.count("/") >= 2
        or bool(re.match(r"^[A-Za-z]:[\\/]", value))
    )


def _model_identity(spec: EmbedderSpec, source: str, device: str | None) -> str:
    return identity_json(source, **KINDS.get(MODEL_KIND)().identity_settings(spec, spec.dim, device))


def _resolve_local(spec: EmbedderSpec, path: Path, device: str | None) -> ResolvedModel:
    path = path.resolve()
    if not path.is_dir():
        raise EmbedderError(
            f"{field_name(spec, 'model')}: {str(path)!r} is a file; fix: give the folder of a "
            f"sentence-transformers model (the one holding modules.json or config.json)."
        )
    if not ((path / "modules.json").is_file() or (path / "config.json").is_file()):
        raise EmbedderError(
            f"{field_name(spec, 'model')}: {str(path)!r} has neither modules.json nor config.json, so "
            f"it is not a sentence-transformers (or transformers) model folder; fix: point to the "
            f"folder that SentenceTransformer.save() or a hub snapshot produced."
        )
    if spec.revision is not None:
        raise reject(
            spec, "revision", "a local folder has no revisions (hub ids only)", "remove revision"
        )
    source = f"local:sha256:{folder_digest(path)}"
    return ResolvedModel(
        kind="sentence-transformers",
        location=str(path),
        identity=_model_identity(spec, source, device),
        origin="local",
        dim=spec.dim,
    )


def _resolve_hub(spec: EmbedderSpec, device: str | None) -> ResolvedModel:
    source = f"hub:{spec.model}@{spec.revision or 'main'}"
    return ResolvedModel(
        kind="sentence-transformers",
        location=spec.model,
        identity=_model_identity(spec, source, device),
        origin="hub",
        revision=spec.revision,
        dim=spec.dim,
    )


_SKIP_DIRS = {".git", ".cache", "__pycache__", ".ipynb_checkpoints"}
_hash_cache: dict[str, tuple[tuple, str]] = {}
_hash_lock = threading.Lock()


def _folder_files(root: Path) -> list[tuple[str, Path]]:
    """(relative posix path, path) of every file under root, sorted, skipping VCS/cache folders."""
    out: list[tuple[str, Path]] = []
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a symlink cycle
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        for fname in filenames:
            path = Path(dirpath) / fname
            if path.is_file():
                out.append((path.relative_to(root).as_posix(), path))
    out.sort(key=lambda item: item[0])
    return out


def folder_digest(root: Path) -> str:
    """sha256 over the relative paths, sizes and contents of every file of a model folder.

    ``.git``, ``.cache`` and ``__pycache__`` folders are skipped. Results are memoised in this
    process per folder and keyed by every file's (path, size, mtime_ns, inode), so resolving the
    same unchanged folder again costs one directory walk.
    """
    root = Path(root).resolve()
    files = _folder_files(root)
    stamp = []
    for rel, path in files:
        st = path.stat()
        stamp.append((rel, st.st_size, st.st_mtime_ns, st.st_ino))
    key = tuple(stamp)
    with _hash_lock:
        cached = _hash_cache.get(str(root))
        if cached is not None and cached[0] == key:
            return cached[1]

    def chunks():
        for (rel, path), (_, size, _, _) in zip(files, stamp):
            yield rel.encode("utf-8") + b"\0" + str(size).encode() + b"\0"
            with open(path, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    yield chunk

    hexdigest = content_hash_of(chunks())
    with _hash_lock:
        _hash_cache[str(root)] = (key, hexdigest)
    return hexdigest
