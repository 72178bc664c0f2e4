"""Dock widgets: thin Qt front ends over core calls."""
