"""The one reorder buffer behind the join gate and the in-memory sequencer."""
from hypothesis import given
from hypothesis import strategies as st

from channels_example.layers.reorder import ReorderBuffer


def test_items_come_out_in_their_numbered_order():
    buffer, out = ReorderBuffer(1), []
    for number in (3, 1, 2, 5, 4):
        buffer.push(number, number, now=0)
        out += buffer.pop_due(now=0)
    assert out == [1, 2, 3, 4, 5]


@given(st.permutations(range(1, 60)))
def test_any_arrival_order_gives_the_numbered_order(arrival):
    buffer, out = ReorderBuffer(1), []
    for number in arrival:
        buffer.push(number, number, now=0)
        out += buffer.pop_due(now=0)
    assert out == list(range(1, 60)) and not buffer.waiting


def test_a_late_item_is_refused_for_the_caller_to_decide():
    buffer = ReorderBuffer(5)
    assert buffer.push(4, "late", now=0) is False
    assert buffer.pop_due(now=0) == []


def test_without_a_start_the_first_item_pushed_is_due():
    buffer = ReorderBuffer()
    buffer.push(41, "a", now=0)
    assert buffer.pop_due(now=0) == ["a"] and buffer.next == 42


def test_a_gap_holds_later_items_until_it_is_stale_then_is_skipped_and_named():
    buffer = ReorderBuffer(1, gap_seconds=1.0)
    buffer.push(3, "three", now=10.0)
    assert buffer.pop_due(now=10.5) == [] and buffer.waiting
    assert buffer.pop_due(now=11.5) == ["three"]
    assert buffer.skipped == (1, 2) and buffer.next == 4


def test_too_many_parked_items_skip_the_gap_at_once():
    buffer = ReorderBuffer(1, gap_seconds=60, max_parked=2)
    for number in (2, 3, 4):
        buffer.push(number, number, now=0)
    assert buffer.pop_due(now=0) == [2, 3, 4]
