"""The container's entrypoint (`python -m indexer.action`), kept thin on purpose.

Exec-form ENTRYPOINT lands here directly: no shell in between, because /bin/sh
drops environment variables whose names contain hyphens (`INPUT_GITHUB-TOKEN`).
"""

import sys

from indexer.action.run import main

if __name__ == "__main__":
    sys.exit(main())
