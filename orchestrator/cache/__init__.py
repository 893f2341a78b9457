"""The cache: content hashes, canonical parameters, code fingerprints, cache keys and
the explanations of a miss."""
