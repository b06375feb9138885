"""`python -m bench.alerts`: alert quality on labelled streams, with the shipped rules.

A seeded generator writes 6 hours of background news on 24 tickers in four sectors and
several topics, with negative episodes of different sizes and shapes injected (one ticker,
one sector, the whole market, a slow build-up on one ticker) and background noise that must
not fire (a busy but ordinary news flurry, a few bearish items on a quiet ticker, one bearish
story carried by a dozen outlets). The ticker episode is itself syndicated (each story
carried by two outlets), and `--count items|stories` makes every rule count that. The same
stream is delivered four ways:

    a  in order, live: each item arrives shortly after it was published
    b  shuffled: the whole stream as one backlog after an outage, in random order
    c  4 partitions drained at different speeds (1, 1/2, 1/4, 1/8), each in order
    d  in order, live, then the whole stream delivered again (redelivery)

through the worker's own code path: `Runtime.prepare`/`commit` (decode, store, the window
counts, the watermark fed per partition) and the `AlertService` (judging, incidents,
grouping, the outbox, the log channel), on SQLite, on a simulated clock. The classifier is a
double that returns the labels the generator set, so the figures measure the alerting, not
the model.

Printed per delivery: incidents, notices and messages, recall of the injected episodes,
false incidents per 6 h of background, detection delay in event time and in processing
time, and whether the incident set equals (a)'s. `--chart` draws one episode: its window
scores, the baseline, the threshold and the incident span (docs/alerts.md).
"""
