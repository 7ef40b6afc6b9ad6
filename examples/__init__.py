"""Example swimstream apps; the tests run every one of them."""
