"""A deterministic multi-tenant CRM dataset for the demo, the tests and the benchmark."""
