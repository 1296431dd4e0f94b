"""Station state machines: conveyor line, manual check station, gate."""
