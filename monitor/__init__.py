"""Pantau: a public status monitor and outage tracker."""

__version__ = "0.1.0"
