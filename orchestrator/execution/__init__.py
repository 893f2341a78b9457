"""Executing step attempts: the worker boundary (plain data in, plain data out) and the
executors behind it (thread, process, sequential, Dask, Docker). Never the metadata store."""
