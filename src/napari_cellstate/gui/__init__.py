"""Everything napari: layer conversions, sample data, widgets."""
