"""The SQLite cache of what was read, and where its files live between runs."""
