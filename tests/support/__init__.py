"""Helpers shared by tests: broker utilities that read and write topics directly."""
