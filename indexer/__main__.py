"""`python -m indexer` is the `run-exports-index` command."""

from indexer.cli import main

raise SystemExit(main())
