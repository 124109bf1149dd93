"""Experiments: configs, sweeps, a resumable runner (local processes or Ray) and reports.

    from agents.experiments import load_experiment, run_experiments, write_report

    exp = load_experiment("arms")                 # or a TOML file of your own
    run_experiments([exp], "results/")            # resumable; one CSV per finished config
    write_report("results/")                      # plots + report.md

The paper's grid ships as named experiments (``named_experiments()``), also
runnable as ``gambit-gym experiment run all``: ``paper/<name>.toml``, and beside
the experiments the paper draws a finding from, ``paper/<name>.py`` with the
checks of those findings (see :mod:`agents.experiments.findings`). Experiments
beyond the paper ship the same way in ``beyond/`` (listed after the paper's,
alphabetically; their findings are declared in ``beyond/__init__.py``).
"""

from agents.experiments.config import (
    MAX_CONFIGS,
    PAPER_ORDER,
    Config,
    Experiment,
    ExperimentError,
    SweepParameter,
    available_memory,
    estimate_memory,
    load_experiment,
    named_experiments,
)
from agents.experiments.findings import Finding, FindingCheck, Undecidable, finding
from agents.experiments.report import check_findings, load_results, write_report
from agents.experiments.runner import (
    BACKENDS,
    ExperimentInterrupted,
    FolderBusyError,
    read_columns,
    read_results,
    regret_rounds,
    run_config,
    run_experiment,
    run_experiments,
)

__all__ = [
    "BACKENDS",
    "MAX_CONFIGS",
    "PAPER_ORDER",
    "Config",
    "Experiment",
    "ExperimentError",
    "ExperimentInterrupted",
    "FolderBusyError",
    "Finding",
    "FindingCheck",
    "Undecidable",
    "check_findings",
    "finding",
    "load_results",
    "write_report",
    "available_memory",
    "estimate_memory",
    "read_columns",
    "regret_rounds",
    "SweepParameter",
    "load_experiment",
    "named_experiments",
    "read_results",
    "run_config",
    "run_experiment",
    "run_experiments",
]
