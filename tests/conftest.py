"""Shared pytest set-up: each real component has its own fixture module under tests/fixtures/."""

pytest_plugins = [
    "tests.fixtures.broker",
    "tests.fixtures.rtsp",
    "tests.fixtures.database",
]
