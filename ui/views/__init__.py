"""The parts of the Review page: a patch's maps, a region's maps, a reference annotation, and
the reader's drawing, diagnosis and Save."""
