"""Browser tests against the review UI on loopback (`make test-e2e`)."""

from browser import browser  # noqa: F401  # the fixture
