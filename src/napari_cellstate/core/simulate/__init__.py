"""Synthetic H2B data with ground truth: a time-lapse movie and single-cell crops."""

from ._crops import CropBatch, generate_crops
from ._movie import SimulationResult, iter_simulate_movie, simulate_movie

__all__ = ["CropBatch", "SimulationResult", "generate_crops", "iter_simulate_movie", "simulate_movie"]
