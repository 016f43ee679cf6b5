"""HTTP routes, one module per resource: they parse the E2B body, call a service and shape its answer."""
