"""Running a graph: the engine loop, with its run state, cache resolution and recording."""
