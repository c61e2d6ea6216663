"""berth's test fixture: 3 pass, 2 fail, 1 skipped, 1 error (see EXPECTED.md)."""
import pytest

from calc import add, mean


def test_add():
    assert add(2, 3) == 5


def test_add_negative():
    assert add(-2, -3) == -5


def test_mean():
    assert mean([1, 2, 3, 4]) == 2.5


def test_add_fails():
    assert add(2, 2) == 5, "add(2, 2) should be 5 (deliberately wrong)"


def test_mean_fails():
    assert mean([1, 2]) == 2, "mean([1, 2]) should be 2 (deliberately wrong)"


@pytest.mark.skip(reason="skipped on purpose")
def test_skipped():
    assert False


@pytest.fixture
def empty_mean():
    return mean([])  # raises ValueError: an error in setup, not a failure


def test_fixture_errors(empty_mean):
    assert empty_mean == 0
