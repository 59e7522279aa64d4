"""run-exports-index: keep a conda channel's run_exports indexed."""

__version__ = "0.1.0"
