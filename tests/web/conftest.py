"""Fixtures of the web tests (the pieces live in :mod:`tests.web.harness`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.web.harness import Served, ServeFactory, serve


@pytest.fixture(name="serve")
def serve_factory() -> ServeFactory:
    """``async with serve(mailbox_capacity=..., **web_options) as served:``."""
    return serve


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    """The towers example behind a web server with default settings."""
    async with serve() as running:
        yield running
