"""bench/trajectory.py at a small shape: every column filled, the older commit's strategies
loaded from git and run on the same contexts, a capped trajectory extrapolated."""

from __future__ import annotations

import re

from bench.trajectory import main


def rows(text: str) -> dict[str, list[str]]:
    return {cells[0]: cells[1:] for line in text.splitlines() if line.startswith("| ")
            for cells in [[c.strip() for c in line.strip("|").split("|")]] if cells[0] != "strategy"}


def test_small_shape_before_and_after(capsys):
    main(["--pool", "600", "--test", "150", "--dims", "32", "--classes", "4", "--cycles", "2",
          "--strategies", "margin,typiclust", "--before", "67fed6c", "--before-cycles", "1,2"])
    table = rows(capsys.readouterr().out)
    assert list(table) == ["random", "margin", "typiclust"]  # the baseline first
    for name, cells in table.items():
        total, learner, queries = (float(c) for c in cells[:3])
        assert total >= learner + queries > 0, name
        assert re.fullmatch(r"[\d.]+, [\d.]+", cells[6]), cells  # the old code timed at cycles 1 and 2
    assert table["random"][4] == "1.00"
    assert table["margin"][8] == "yes"  # unchanged since 67fed6c: the same rows from the same context


def test_capped_trajectory_is_extrapolated(capsys):
    main(["--pool", "400", "--test", "100", "--dims", "16", "--classes", "3", "--cycles", "3",
          "--strategies", "random", "--cap", "0"])
    cells = rows(capsys.readouterr().out)["random"]
    assert cells[0].startswith("~") and cells[1].startswith("~")



def test_variant_labels_give_a_strategy_and_its_parameters():
    from bench.trajectory import strategy_params

    assert strategy_params("margin") == ("margin", {})
    assert strategy_params("typiclust(clustering=subspace,k=10)") == ("typiclust", {"clustering": "subspace", "k": 10})
    assert strategy_params("probcover(delta_per=pool)") == ("probcover", {"delta_per": "pool"})
