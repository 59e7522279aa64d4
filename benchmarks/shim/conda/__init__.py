"""A stand-in for the two `conda` modules conda-index 0.13 imports (benchmarks only).

PyPI does not carry `conda`; `benchmarks.condaindex_run` puts this folder on
`sys.path` for the conda-index run only. Nothing else imports it.
"""
