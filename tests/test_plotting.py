"""Figures: one colour per agent everywhere, categorical sweeps ticked as categories, legends outside the data."""

import subprocess
import sys

import numpy as np
import pytest

from agents import StandardTS, run_bandit
from agents.experiments import load_experiment
from agents.experiments.report import final_figure, load_results, regret_figure
from agents.plotting import KNOWN_AGENTS, PALETTE, agent_color, agent_colors
from tests._experiments import write_config

pytest.importorskip("matplotlib")


def test_known_agents_have_fixed_colours_under_every_name():
    assert agent_color("poGAMBITTS") == agent_color("PoGAMBITTS") == PALETTE[0]
    assert agent_color("StdTS") == agent_color("StandardTS") == agent_color("stdts") == PALETTE[3]
    assert agent_color("sb3:PPO") == agent_color("PPO")
    fixed = {agent_color(name) for name in ("poGAMBITTS", "foGAMBITTS", "ensemble", "StdTS", "LinTS",
                                            "poGAMBITTS-hedged", "StdTS-contextual", "poGAMBITTS-no-context",
                                            "PPO", "A2C", "DQN")}
    assert len(fixed) == 11  # the paper's agents and SB3's never share a colour


def test_an_unknown_label_gets_the_same_colour_in_every_process_and_not_a_known_agents():
    reserved = {PALETTE[i] for i in KNOWN_AGENTS.values()}
    labels = ["epsilon-greedy (custom)", "my agent", "UCB1"]
    here = [agent_color(label) for label in labels]
    code = f"from agents.plotting import agent_color; print([agent_color(x) for x in {labels!r}])"
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert there.strip() == repr(here)  # a CRC, not Python's salted hash()
    assert not reserved & set(here)
    with pytest.raises(TypeError, match="label"):
        agent_color(3)


def test_one_figure_never_repeats_a_colour_while_the_palette_lasts():
    labels = ["StdTS", "poGAMBITTS", *[f"agent {i}" for i in range(18)]]
    colours = agent_colors(labels)
    assert list(colours) == labels and len(set(colours.values())) == len(PALETTE)
    assert colours["StdTS"] == agent_color("StdTS") and colours["poGAMBITTS"] == agent_color("poGAMBITTS")


def _line_colours(ax):
    import matplotlib.colors as mcolors

    return {line.get_label(): mcolors.to_hex(line.get_color()) for line in ax.get_lines()}


def test_bandit_result_plot_and_the_report_colour_an_agent_alike(tmp_path):
    import matplotlib.pyplot as plt

    result = run_bandit("GeneratorMediated-v0", {"my agent": StandardTS, "StdTS": StandardTS}, horizon=20,
                        replications=3, seed=0, progress=False)
    ax = result.plot(tmp_path / "regret.png")
    plotted = _line_colours(ax)
    assert plotted == {"my agent": agent_color("my agent"), "StdTS": agent_color("StdTS")}
    # the legend is right of the axes, not over the curves
    fig = ax.figure
    fig.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    assert legend.x0 >= ax.get_window_extent().x1
    plt.close(fig)

    noise = load_experiment("noise-linear").with_overrides(horizon=10, replications=5)
    write_config(tmp_path, noise, {f"noise_level={i}": {"StdTS": 100 + 10 * i, "my agent": 50 + 5 * i}
                                   for i in range(5)})
    exp = load_results(tmp_path)["noise-linear"]
    fig = regret_figure(exp)
    assert _line_colours(fig.axes[0]) == plotted
    plt.close(fig)


def test_final_regret_ticks_each_swept_value_and_keeps_the_legend_below_the_axes(tmp_path):
    import matplotlib.pyplot as plt

    noise = load_experiment("noise-linear").with_overrides(horizon=10, replications=5)
    write_config(tmp_path, noise, {f"noise_level={i}": {"poGAMBITTS": 10 + 20 * i, "StdTS": 100 + 10 * i}
                                   for i in range(5)})
    sim = load_experiment("simulation-access").with_overrides(horizon=10, replications=5)
    write_config(tmp_path, sim, {c.config_id: {"poGAMBITTS": 40 - 3 * i, "StdTS": 172}
                                 for i, c in enumerate(sim.configs())})
    results = load_results(tmp_path)

    fig = final_figure(results["noise-linear"])
    ax = fig.axes[0]
    fig.canvas.draw()
    assert list(ax.get_xticks()) == [0, 1, 2, 3, 4]  # levels, never 0.5 steps
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "2", "3", "4"]
    assert ax.get_legend().get_window_extent().y1 <= ax.get_window_extent().y0
    colours = {line.get_color() for line in ax.get_lines()}
    assert {agent_color("poGAMBITTS"), agent_color("StdTS")} <= colours
    plt.close(fig)

    fig = final_figure(results["simulation-access"])  # M_off from 15 to 2000: a log axis, ticked at the budgets
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert np.allclose(ax.get_xticks(), [15, 50, 100, 500, 2000])
    plt.close(fig)
