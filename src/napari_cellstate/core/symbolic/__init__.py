"""Symbolic regression (Scheme 4): discover, choose, read and use a formula for cell state."""
