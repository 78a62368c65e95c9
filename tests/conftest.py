"""Shared pytest configuration for the picorr tests."""


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "browser: opens the built book (_build/html) in headless Chromium; "
        "run after `python3 tasks.py book` (`python3 tasks.py test` does both)",
    )
