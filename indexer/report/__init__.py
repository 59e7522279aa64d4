"""The run report: its model, built from stage values, and its Markdown rendering."""
