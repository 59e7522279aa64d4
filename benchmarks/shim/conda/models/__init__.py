"""conda.models (shim)."""
