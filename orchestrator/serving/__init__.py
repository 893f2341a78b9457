"""Serving a registered model over HTTP, with hot swap on promotion."""
