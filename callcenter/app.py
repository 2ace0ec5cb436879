"""Composition root: builds the controller from config and owns every task in one TaskGroup."""
