"""A module that fails while importing, as a user's module with a bug does."""

raise RuntimeError("boom at import")
