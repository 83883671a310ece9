"""Figures for the book and the reports, by what they show: the data, results, model internals."""

from gaitlib.figures.data import plot_synthetic_samples
from gaitlib.figures.models import plot_fusion_weights, plot_local_volumes, plot_ssfl_selection
from gaitlib.figures.results import (
    pick_identities,
    plot_accuracy_vs_parameters,
    plot_learning_curves,
    plot_tsne,
    plot_tsne_pair,
    plot_view_heatmaps,
    tsne_embedding,
)

__all__ = ["pick_identities", "plot_accuracy_vs_parameters", "plot_fusion_weights", "plot_learning_curves",
           "plot_local_volumes", "plot_ssfl_selection", "plot_synthetic_samples", "plot_tsne",
           "plot_tsne_pair", "plot_view_heatmaps", "tsne_embedding"]
