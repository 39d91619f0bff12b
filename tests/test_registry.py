"""The one registry every kind of plug-in uses, with real entry points of a package written
into a temporary folder on sys.path (importlib.metadata reads its .dist-info as pip leaves it)."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

import pytest

from strategies import QueryStrategy
from strategies.registry import PluginRefused, Registry, StrategyRegistry, UnknownNameError, strategy_check
from workers.learners.mlp import MLPSpec
from workers.specs import LogisticRegressionSpec, ProtocolSpec, StrategySpec, TrialSpec

GROUP = "albench.test_registry"


def install(root, modules: dict[str, str], entries: dict[str, str], version: str = "1.2.3") -> None:
    """A distribution ``regpkg`` with ``modules`` (name -> source) and ``entries`` in ``GROUP``."""
    for name, source in modules.items():
        (root / f"{name}.py").write_text(textwrap.dedent(source))
    dist = root / f"regpkg-{version}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: regpkg\nVersion: {version}\n")
    (dist / "entry_points.txt").write_text(f"[{GROUP}]\n" + "".join(f"{k} = {v}\n" for k, v in entries.items()))


def positive(name, thing):
    if not (isinstance(thing, int) and thing > 0):
        raise PluginRefused(f"{thing!r} is not a positive int")


def test_plugins_are_read_once_with_their_origin_and_failures_are_one_line(tmp_path, monkeypatch):
    install(tmp_path, {"regmod": "ANSWER = 42\nNEGATIVE = -1\n", "regbroken": "import no_such_module_here\n"},
            {"answer": "regmod:ANSWER", "negative": "regmod:NEGATIVE", "broken": "regbroken:X",
             "seven": "regmod:ANSWER"})
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry("number", GROUP, positive)
    registry.add("seven", 7)  # a built-in: a plug-in cannot take its name
    registry.lazy("lazy", "math:pi")
    assert registry.get("answer") == 42
    assert str(registry.origin("answer")) == "regpkg==1.2.3" and registry.origin("seven").builtin
    assert registry.names() == ["answer", "lazy", "seven"]
    assert registry.get("seven") == 7 and registry.get("lazy") > 3
    problems = "\n".join(registry.problems)
    assert len(registry.problems) == 3 and "Traceback" not in problems
    assert ("number plug-in 'broken' (regbroken:X) of the package 'regpkg' could not be imported "
            "(ModuleNotFoundError: No module named 'no_such_module_here')") in problems
    assert "number plug-in 'negative' (regmod:NEGATIVE) of the package 'regpkg' is refused: -1 is not a positive int" in problems
    assert "number plug-in 'seven' (regmod:ANSWER) of the package 'regpkg' is refused: number 'seven' is registered twice" in problems
    with pytest.raises(UnknownNameError, match=r"unknown number 'broken'; valid names: answer, lazy, seven \(number plug-in 'broken'"):
        registry.get("broken")


def test_a_builtin_registered_twice_or_refused_by_its_kind_raises():
    registry = Registry("number", GROUP + ".none", positive)
    registry.add("one", 1)
    with pytest.raises(PluginRefused, match="registered twice"):
        registry.add("one", 2)
    with pytest.raises(PluginRefused, match="not a positive int"):
        registry.add("zero", 0)


@dataclass(frozen=True)
class NeedsLabels(QueryStrategy):
    def _select(self, context, n, rng):
        return context.unlabelled_indices()[:n]


def test_an_initial_pool_that_cannot_start_cold_is_refused_at_registration():
    pools = StrategyRegistry("initial pool", GROUP + ".pools", strategy_check(True))
    with pytest.raises(PluginRefused, match="NeedsLabels cannot be an initial pool: it does not start cold"):
        pools.add("needs_labels", NeedsLabels)
    strategies = StrategyRegistry("query strategy", GROUP + ".strategies", strategy_check(False))
    strategies.add("needs_labels", NeedsLabels)  # fine as a query strategy
    with pytest.raises(PluginRefused, match="not a QueryStrategy subclass"):
        strategies.add("text", str)


@pytest.mark.parametrize(("learner", "key"), [(LogisticRegressionSpec(), "e0f9616c0387b6b98e8189ea"),
                                              (MLPSpec(), "636a6def9df96d0b5fe87cf8")])
def test_a_trial_of_builtins_keeps_the_key_albench_gave_it_before_plugins(learner, key, monkeypatch):
    """The keys computed by albench before the plug-in registry (commit 67fed6c, result version
    3): the registry changes no built-in key; only a result version does."""
    import workers.specs

    monkeypatch.setattr(workers.specs, "RESULT_VERSION", 3)
    trial = TrialSpec(dataset="d", embedder="e", dataset_fingerprint="f" * 64, embedding_key="k" * 64,
                      n_classes=3, initial_pool=StrategySpec(name="random"), strategy=StrategySpec(name="badge"),
                      seed=0, protocol=ProtocolSpec(cycles=10), learner=learner)
    assert trial.trial_key == key
    with_plugin = trial.model_copy(update={"plugins": {"strategies.badge": "pkg==1"}})
    assert with_plugin.trial_key != key
    assert with_plugin.model_copy(update={"plugins": {"strategies.badge": "pkg==2"}}).trial_key != with_plugin.trial_key


def test_a_source_or_a_learner_must_declare_the_name_it_is_registered_under():
    from workers.datasets import SOURCES, FileSource
    from workers.specs import LEARNERS

    with pytest.raises(PluginRefused, match="FileSource declares the name 'file', not 'csv'"):
        SOURCES.check("csv", FileSource)
    with pytest.raises(PluginRefused, match=r"is not a LearnerKind subclass \(workers.specs\)"):
        LEARNERS.check("file", FileSource)
