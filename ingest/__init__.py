"""`finmon ingest`: polls news feeds and publishes their entries to finmon's input topic."""
