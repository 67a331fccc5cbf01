"""The names of the report's figures, in one place: the figures rule declares them as its
outputs, ``cnnopt.figures.draw`` draws them and the report embeds them. (A module of its own, free
of matplotlib, so that the Snakefile can read it quickly.)"""

from __future__ import annotations

#: The comparison figures ``make_all`` expects in its ``outputs`` mapping: name -> the title
#: the report gives it, in the order the report shows them.
FIGURES = {
    "final_accuracy": "Initial vs final test accuracy",
    "val_accuracy_vs_epoch": "Validation accuracy per epoch",
    "val_accuracy_vs_seconds": "Validation accuracy against training time",
    "lr_schedules": "Learning-rate schedules",
    "confusion_best": "Confusion matrix of the shown run",
}
#: The per-optimizer train/validation figure is named this prefix plus the optimizer.
OPTIMIZER_FIGURE_PREFIX = "optimizer_"


def optimizer_figure_name(optimizer: str) -> str:
    """The name (file stem) of ``optimizer``'s train/validation figure, e.g. "optimizer_adam"."""
    return OPTIMIZER_FIGURE_PREFIX + optimizer


def figure_optimizer(name: str) -> str | None:
    """The optimizer of a per-optimizer figure name (inverse of ``optimizer_figure_name``)."""
    return name[len(OPTIMIZER_FIGURE_PREFIX):] if name.startswith(OPTIMIZER_FIGURE_PREFIX) else None


#: The learning-rate search's figure is named this prefix plus the search.
TUNING_FIGURE_PREFIX = "tuning_"


#: The performance profile of the tuned runs' times to the validation target (all searches).
PROFILE_FIGURE = "performance_profile"


def tuning_figure_name(search: str) -> str:
    """The name (file stem) of a search's accuracy-against-rate figure, e.g. "tuning_blocks"."""
    return TUNING_FIGURE_PREFIX + search


def figure_search(name: str) -> str | None:
    """The search of a tuning figure name (inverse of ``tuning_figure_name``)."""
    return name[len(TUNING_FIGURE_PREFIX):] if name.startswith(TUNING_FIGURE_PREFIX) else None
