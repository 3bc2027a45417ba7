"""The five tests that a chapter's grading file runs over its checks, written once (tests/test_grading_ch09.py and
tests/test_grading_ch10.py use them): the chapter registers its exercises in order, right code passes at three
seeds, each wrong version fails with a message naming its mistake, an endless loop fails within the time limit,
and an unwritten stub says so. A test file binds them to its own ``test_…`` names, which pytest collects."""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import pytest

from diffcourse.grading import checks_for_chapter
from grading_helpers import assert_caught, assert_passes, assert_stub_says_so, assert_times_out


def chapter_tests(chapter: int, order: Sequence[str], good: Mapping[str, Callable],
                  wrong: Sequence[tuple[str, Callable, str]], endless: Sequence[str]) -> tuple[Callable, ...]:
    """``(registers_in_order, correct_code_passes, wrong_code_is_caught, endless_loop_fails, stub_says_so)`` for
    chapter ``chapter``: ``order`` its exercises as registered, ``good`` a right version of each, ``wrong`` rows
    ``(exercise, wrong version, words the failure message must contain)``, ``endless`` the exercises to feed an
    endless loop."""
    def registers_in_order():
        assert checks_for_chapter(chapter) == list(order)
        assert set(good) == set(order)

    @pytest.mark.parametrize("seed", [None, 1, 2])
    @pytest.mark.parametrize("name", sorted(good))
    def correct_code_passes(name, seed, capsys):
        assert_passes(name, good[name], seed, capsys)

    @pytest.mark.parametrize("name, wrong_fn, words", wrong, ids=[f"{w[0]}-{i}" for i, w in enumerate(wrong)])
    def wrong_code_is_caught(name, wrong_fn, words, capsys):
        assert_caught(name, wrong_fn, words, capsys)

    @pytest.mark.parametrize("name", list(endless))
    def endless_loop_fails(name, capsys):
        assert_times_out(name, capsys)

    @pytest.mark.parametrize("name", sorted(good))
    def stub_says_so(name):
        assert_stub_says_so(name)

    return registers_in_order, correct_code_passes, wrong_code_is_caught, endless_loop_fails, stub_says_so
