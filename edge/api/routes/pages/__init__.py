"""The operator pages' routes, one module per page or group of pages (none is in the OpenAPI document)."""
