"""The GitHub Action: `uses: org/run-exports-index@v1`.

The container's ENTRYPOINT is `python -m indexer.action`. `settings` reads the
inputs, `run` drives the CLI and turns its report into outputs, annotations and
the job summary (`workflow`), and `comment` keeps the sticky pull-request comment.
"""
