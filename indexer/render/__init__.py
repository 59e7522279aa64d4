"""Pure rendering: run_exports.json, shards, repodata.json, patches and lints from cached rows."""
