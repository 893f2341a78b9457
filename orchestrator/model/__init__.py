"""The pipeline model: steps, pipelines, graphs and their types. No I/O, no execution."""
