"""Shared pytest set-up: each real component has its own fixture module under tests/fixtures/."""

pytest_plugins = [
    "tests.fixtures.broker",
    "tests.fixtures.rtsp",
    "tests.fixtures.database",
]

from hypothesis import settings  # noqa: E402

# Nothing is written into the working directory: hypothesis would keep its example database in
# ./.hypothesis. Failures print their example, which the test then gets as a regular case.
settings.register_profile("monitor", database=None)
settings.load_profile("monitor")
