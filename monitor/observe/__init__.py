"""Watching the daemon run: one snapshot of every stage's counters (``DaemonStats``), served as
Prometheus metrics and published as the ``{prefix}/stats/{instance}`` topic."""
