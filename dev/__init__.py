"""Development tooling, not in the action image: the demo, sample channels, SeaweedFS."""
