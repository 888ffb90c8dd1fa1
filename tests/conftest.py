"""Shared pytest set-up: each real component has its own fixture module under tests/fixtures/."""

pytest_plugins = [
    "tests.fixtures.broker",
    "tests.fixtures.rtsp",
    "tests.fixtures.database",
]

import os  # noqa: E402

from hypothesis import settings  # noqa: E402

# Nothing is written into the working directory: hypothesis would keep its example database in
# ./.hypothesis. Failures print their example, which the test then gets as a regular case.
# The suite runs the same examples every time (derandomize), so a CI run is reproducible and a
# red run is the change's fault, not the seed's. Hunting for new failures is a separate run:
#   HYPOTHESIS_PROFILE=explore pytest tests/test_config_fuzz.py tests/test_cli_queries_fuzz.py
settings.register_profile("monitor", database=None, derandomize=True)
settings.register_profile("explore", database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "monitor"))
