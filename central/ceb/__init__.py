"""China customs cross-border e-commerce (CEB) messages: parse, validate and emit."""
