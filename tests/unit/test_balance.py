"""The decision of which worker takes a new connection, and the shared counts it reads."""

import pytest

from netlog.balance import ALIVE, DEAD, DRAINING, WORD, Counts, choose, size_in_words


def make_counts(workers: int) -> Counts:
    return Counts(memoryview(bytearray(size_in_words(workers) * WORD)), workers)


def accept(counts: Counts, me: int) -> int:
    """One connection accepted by ``me``: passed (counted in flight) or kept; who serves it."""
    target = counts.choose(me)
    if target is None:
        counts.set_held(me, counts.held(me) + 1)
        return me
    counts.add_handed(me, target)
    return target


class TestChoose:
    """Pass only to a live worker that would hold clearly fewer."""

    def test_keeps_when_even_or_one_ahead_with_the_new_one(self):
        assert choose(0, [0, 0], [ALIVE, ALIVE]) is None
        assert choose(0, [3, 3], [ALIVE, ALIVE]) is None
        assert choose(0, [2, 3], [ALIVE, ALIVE]) is None

    def test_passes_to_the_least_loaded_lowest_number_first(self):
        assert choose(0, [1, 0], [ALIVE, ALIVE]) == 1
        assert choose(2, [1, 1, 2, 0], [ALIVE] * 4) == 3
        assert choose(2, [0, 0, 2], [ALIVE] * 3) == 0

    def test_never_to_a_dead_or_draining_worker(self):
        assert choose(0, [9, 0, 0], [ALIVE, DEAD, DRAINING]) is None
        assert choose(0, [9, 0, 5], [ALIVE, DEAD, ALIVE]) == 2

    def test_a_draining_worker_keeps_everything(self):
        assert choose(0, [9, 0], [DRAINING, ALIVE]) is None
        assert choose(0, [9, 0], [DEAD, ALIVE]) is None

    def test_a_larger_margin_tolerates_more(self):
        assert choose(0, [2, 0], [ALIVE, ALIVE], margin=4) is None
        assert choose(0, [3, 0], [ALIVE, ALIVE], margin=4) == 1


class TestCounts:
    """Loads count connections in flight; each word has one writer."""

    def test_a_burst_on_one_worker_ends_even(self):
        # The kernel put all 8 on worker 0, before worker 1 took any passed one:
        # only the in-flight counts keep worker 0 from passing all of them.
        counts = make_counts(2)
        for j in (0, 1):
            counts.set_state(j, ALIVE)
        served = [accept(counts, 0) for _ in range(8)]
        assert served.count(0) == 4
        assert served.count(1) == 4
        assert counts.loads() == [4, 4]
        assert counts.handed_by(0) == 4

    def test_odd_bursts_on_three_workers_end_within_one(self):
        counts = make_counts(3)
        for j in range(3):
            counts.set_state(j, ALIVE)
        for me in [0] * 7 + [2] * 4:
            accept(counts, me)
        loads = counts.loads()
        assert sum(loads) == 11
        assert max(loads) - min(loads) <= 1

    def test_received_moves_a_connection_from_in_flight_to_held(self):
        counts = make_counts(2)
        counts.add_handed(0, 1)
        assert counts.loads() == [0, 1]
        counts.add_received(0, 1)
        counts.set_held(1, 1)
        assert counts.loads() == [0, 1]
        assert counts.handed(0, 1) == counts.received(0, 1) == 1

    def test_the_writer_is_the_sender_after_the_last_worker(self):
        counts = make_counts(2)
        counts.add_handed(2, 0)
        assert counts.loads() == [1, 0]
        assert counts.handed_by(2) == 1
        assert counts.handed_by(0) == counts.handed_by(1) == 0

    def test_words_are_independent(self):
        counts = make_counts(3)
        counts.set_held(1, 7)
        counts.set_state(2, DRAINING)
        counts.add_handed(3, 2)
        counts.add_received(1, 0)
        assert [counts.held(j) for j in range(3)] == [0, 7, 0]
        assert counts.states() == [DEAD, DEAD, DRAINING]
        assert counts.handed(3, 2) == 1
        assert counts.received(1, 0) == 1
        assert sum(counts.words) == 7 + DRAINING + 2

    def test_too_small_a_buffer_is_refused(self):
        with pytest.raises(ValueError, match="cannot hold"):
            Counts(memoryview(bytearray(WORD)), 2)
