"""Every figure of the registry renders from synthetic tables at the default's scale, the paper's and
an extension grid with INT3/INT2/ternary, with no overlapping or clipped text; the overlap check
itself catches a bad figure; the boundary-map table and the captions' numbers are right."""

import figure_tables
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO, load_default_config
from test_audit import paper_config

from qatgrid import stats
from qatgrid.plots import captions
from qatgrid.plots.layout import layout_problems
from qatgrid.plots.registry import FIGURES
from qatgrid.plots.style import BITS_COLORS, PNG_DPI
from qatgrid.runs import bits_label


def tiny_config() -> dict:
    """tests/tiny.yaml merged over the default: one-panel figures, a one-warmdown robustness arm."""
    config = load_default_config()
    for key, value in yaml.safe_load((REPO / "tests" / "tiny.yaml").read_text()).items():
        config[key] = (
            {**config[key], **value} if isinstance(value, dict) and isinstance(config.get(key), dict) else value
        )
    return config


@pytest.fixture(scope="module", params=["tiny", "default", "paper", "extension"])
def grid_tables(request):
    config = {"tiny": tiny_config, "default": load_default_config}.get(request.param, paper_config)()
    return request.param, figure_tables.tables(config, extension=request.param == "extension")


@pytest.mark.parametrize("name", FIGURES)
def test_every_figure_reads_cleanly(grid_tables, name, tmp_path):
    grid, T = grid_tables
    pdf, png = tmp_path / f"{name}.pdf", tmp_path / f"{name}.png"
    figure = FIGURES[name]
    problems = figure.draw(T.only(figure.tables), str(pdf), str(png))
    assert problems == [], f"{grid} grid, {name}: {problems}"
    assert "nan" not in figure.caption(T.only(figure.tables)).lower()
    data = pdf.read_bytes()
    assert data[:5] == b"%PDF-" and b"/FontFile2" in data and b"/Subtype /Type3" not in data  # TrueType
    from PIL import Image

    with Image.open(png) as im:
        assert round(im.info["dpi"][0]) == PNG_DPI and im.size[0] >= 600


def test_the_check_catches_overlap_and_clipping():
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.set_xticks([0.45, 0.55], ["a long tick label", "another long tick label"])
    fig.text(1.02, 0.5, "off the canvas")
    ax.annotate("here", (0.5, 0.5))
    ax.annotate("here too", (0.5, 0.5))
    problems = layout_problems(fig)
    assert "overlap: 'a long tick label' and 'another long tick label'" in problems
    assert "overlap: 'here' and 'here too'" in problems
    assert "outside the canvas: 'off the canvas'" in problems
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(3, 2), layout="constrained")
    ax.set_xticks([0, 1], ["a", "b"])
    ax.set_title("clean")
    assert layout_problems(fig) == []
    plt.close(fig)


def test_one_colour_per_bit_width_and_labels():
    assert sorted(BITS_COLORS, reverse=True) == [16, 8, 6, 4, 3, 2, 1]
    assert len(set(BITS_COLORS.values())) == 7
    assert [bits_label(b) for b in (16, 8, 4, 3, 2, 1)] == ["fp16", "int8", "int4", "int3", "int2", "ternary"]


def _best(bits, size, wd, phase="phase2", n_wd=2):
    return {
        "phase": phase,
        "bits": bits,
        "size": size,
        "optimizer": "muon",
        "schedule": "linear",
        "length_mult": 1,
        "n_params": 0,
        "best_warmdown": wd,
        "best_lr_mult": 1.0,
        "best_mean_loss": 3.0,
        "n_seeds": 5,
        "n_warmdowns": n_wd,
    }


def test_boundary_map_table_on_planted_regimes():
    best = pd.DataFrame(
        [
            _best(16, "10M", 0.33),
            _best(16, "50M", 0.33),
            _best(4, "10M", 0.5),
            _best(4, "50M", 0.33),
            _best(1, "50M", 0.2),
            _best(16, "5M", 0.33, "phase5-sizes", 1),
            {**_best(16, "10M", 0.5), "optimizer": "adamw"},
        ]
    )
    reg = pd.DataFrame(
        [
            {
                **{k: v for k, v in _best(b, s, wd).items() if k in stats.CELL + ["n_params"]},
                "best_warmdown": wd,
                "min_abs_z": z,
                "all_significant": sig,
                "regime": "decisive" if sig else "noise-dominated",
            }
            for b, s, wd, z, sig in [
                (16, "10M", 0.33, 12.0, True),
                (16, "50M", 0.33, 9.0, True),
                (4, "10M", 0.5, 0.4, False),
                (4, "50M", 0.33, 14.0, True),
                (1, "50M", 0.2, 3.0, True),
            ]
        ]
    )
    out = stats.boundary_map(best, reg).set_index(["bits", "size"])
    assert list(out.index.get_level_values("bits").unique()) == [16, 4, 1]  # descending bits
    assert list(out.index.get_level_values("size").unique()) == ["5M", "10M", "50M"]  # numeric order
    assert out.loc[(16, "10M"), "regime"] == "decisive at the expected optimum"  # the AdamW arm is ignored
    assert out.loc[(16, "10M"), "min_abs_z"] == 12.0
    assert out.loc[(4, "10M"), "regime"] == "noise-dominated" and out.loc[(4, "10M"), "best_warmdown"] == 0.5
    assert out.loc[(4, "50M"), "regime"] == "decisive at the expected optimum"
    assert out.loc[(1, "50M"), "regime"] == "decisive elsewhere" and out.loc[(1, "50M"), "bits_label"] == "ternary"
    assert out.loc[(16, "5M"), "regime"] == "one warmdown only"
    assert out.loc[(4, "5M"), "regime"] == out.loc[(1, "10M"), "regime"] == "not run"
    assert len(out) == 9


def test_boundary_map_on_the_extension_grid_recovers_the_planted_regimes():
    T = figure_tables.tables(paper_config(), extension=True)
    m = T["boundary_map"].set_index(["bits_label", "size"])["regime"]
    assert (m.loc["int4"].loc[["50M", "100M"]] == "decisive at the expected optimum").all()
    assert (m.loc["int4"].loc[["3M", "5M", "8M", "10M", "15M", "30M"]] == "noise-dominated").all()
    assert (m.loc["int3"].loc[["30M", "50M", "100M"]] == "decisive at the expected optimum").all()
    assert (m.loc["int2"].loc[["30M", "50M", "100M"]] == "decisive elsewhere").all()
    assert (m.loc["ternary"] != "decisive at the expected optimum").all()
    assert (m.loc["fp16"].loc[["175M", "350M"]] == "decisive at the expected optimum").all()
    assert m.loc[("int4", "350M")] == "not run"


def test_captions_state_the_paper_grid_numbers():
    T = figure_tables.tables(paper_config())

    def caption(name):
        return FIGURES[name].caption(T.only(FIGURES[name].tables))

    assert caption("optimal_warmdown").startswith(
        "This run: optimal warmdown 33% in 12/12 Phase 2 cells, 15/15 Phase 5 (sizes) cells"
    )
    assert caption("loss_vs_warmdown").endswith("Bars: 95% paired intervals over 5–10 seeds.")
    found = caption("paired_z")
    assert "INT4: significant at 2/8 sizes: 50M (" in found and ", 10/10 seeds), 100M (" in found
    assert caption("robustness").startswith("This run: optimum unchanged from the base arm in 12/12 arm cells")
    assert caption("robustness").endswith(
        "Bars: arms 95% paired intervals over 5 seeds; base arm 95% paired intervals over 5 seeds."
    )
    assert caption("penalty_law").endswith("5/5 held-out sizes inside their 95% prediction interval.")
    ratio = T["probe_ratio"]
    assert f"mean {ratio['ratio'].mean():.3f}" in caption("grid_distance") and np.isclose(
        ratio["ratio"].mean(), 1.04, atol=0.005
    )
    assert captions.render("a {found} b |z|", "x") == r"a x b \|z\|"
