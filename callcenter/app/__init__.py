"""Composition root: the controller and its plugins."""
