"""Benchmarks against conda-index and rattler-index on one S3 channel (`make bench`)."""
