"""conda.base (shim)."""
