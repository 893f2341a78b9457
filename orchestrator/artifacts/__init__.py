"""Artifacts: the content-addressed store and one serializer per type."""
