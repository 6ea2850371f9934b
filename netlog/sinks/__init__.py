"""Where decoded records go: the console, the fan-out to every sink, the line encoder."""
