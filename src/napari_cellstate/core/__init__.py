"""Core library: no Qt, no napari; every step a plain function or ``iter_*`` generator."""
