"""What the end-to-end tests and the benchmarks share: the local stack's addresses and a real
`finmon worker` subprocess with the Kafka and PostgreSQL helpers around it.

A development package: `tests/` and `bench/` import it, the wheel does not ship it.
"""
