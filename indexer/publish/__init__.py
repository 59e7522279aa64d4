"""Publishing: is it already published, write what changed, prune old shards."""
