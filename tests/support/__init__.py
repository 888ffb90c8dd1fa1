"""Helpers the tests run outside pytest (e.g. the RTSP server under Debian's python3)."""
