"""Shared machinery of the CNN reference suite (see DESIGN.md)."""
