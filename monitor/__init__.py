"""finmon's core: the message contract, windows, batching, the model, the database and the
processing of one batch. It imports neither `alerts` nor `pipelines` (import-linter checks)."""
