"""Equipment: the switches and controllers nac answers, and how each asks and is told."""
