"""`monitor bench`: measure the daemon against the naive loop and against the limits."""
