"""The package version: one place, read by the package, the User-Agent, saved
inventories, reports and the build (pyproject's dynamic version)."""

__version__ = "0.1.0"
