"""Reading artifacts: the info/ part (bounded), in a pool, and whole-artifact checksums."""
