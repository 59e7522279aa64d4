"""Where a channel lives: the ChannelStore interface and its backends (local, staged, S3)."""
