"""finmon's benchmark suite: `python -m bench` (or `make bench`); see docs/performance.md.

Not part of the test suite: absolute figures depend on the machine and on what else runs on
it, so the suite reports them together with ratios measured in the same run, on the same
headlines, and records the machine's load alongside.
"""
