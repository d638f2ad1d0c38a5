"""Fixtures of the browser tests: one headless Chromium per session, a fresh tab per test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.chromium import Chromium, Page, find_chromium


@pytest.fixture(scope="session")
def chromium() -> Iterator[Chromium]:
    executable = find_chromium()
    if executable is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (make setup installs Debian's chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    browser = Chromium(executable)
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture()
def page(chromium: Chromium) -> Iterator[Page]:
    tab = chromium.page()
    try:
        yield tab
    finally:
        tab.close()
