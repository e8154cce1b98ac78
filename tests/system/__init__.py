"""System tier: the daemon as users run it, in its own process: the crash matrix, storage faults, conformance
against the OpenAPI spec, restarts, recovery and packaging."""
