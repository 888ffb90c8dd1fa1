"""The temporal classifier: per-track sequences -> behaviour verdicts (issue 3, in progress)."""
