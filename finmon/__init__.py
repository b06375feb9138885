"""finmon's composition root: the `finmon` command and the assembly of its runtime and daemon.

Nothing imports this package (import-linter checks it): the core (`monitor`), the alert
domain (`alerts`) and the adapters (`pipelines`) each take what they need as arguments, and
only this package knows how they fit together.
"""
