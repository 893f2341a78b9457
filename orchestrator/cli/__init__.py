"""The `orch` command line: the composition root, and what it prints."""
