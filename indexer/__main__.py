"""`python -m indexer` is the `run-exports-index` command."""

from .cli import main

raise SystemExit(main())
