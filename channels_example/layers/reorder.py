"""One reorder buffer: numbered items in, the same items out in their numbered order.

The join gate keeps one per socket and stream (a room's chat messages, its presence
events), and the in-memory sequencer one per socket (its frames, numbered by daphne).
The Redis sequencer runs the same algorithm in Lua, on a hash per socket
(``LUA_POP_DUE`` in channels_example/chat/sequencers.py).

* ``next`` is the number due. An item numbered above it is parked until every number
  before it has come.
* An item numbered below ``next`` is *late*: its turn has passed. ``push`` refuses it
  and the caller decides what it means (the gate drops it, its snapshot held it; the
  sequencer delivers it at once rather than lose it).
* A number that never comes (its item was lost) holds the items after it until the
  gap is ``gap_seconds`` old, or more than ``max_parked`` items are waiting; then
  ``next`` jumps to the lowest parked number, and ``skipped`` says what was skipped.
"""


class ReorderBuffer:
    def __init__(self, next=None, gap_seconds=1.0, max_parked=None):
        self.next = next  # None: the first number pushed is the first due
        self.gap_seconds = gap_seconds
        self.max_parked = max_parked
        self.parked = {}
        self.gap_since = None  # when the gap in front of the parked items was first seen
        self.skipped = None  # (first, last) number of the last gap skipped

    def push(self, number, item, now):
        """Park ``item``; False (and nothing parked) if its turn has passed."""
        if self.next is None:
            self.next = number
        if number < self.next:
            return False
        self.parked[number] = item
        if number != self.next and self.gap_since is None:
            self.gap_since = now
        return True

    def pop_due(self, now):
        """The items due now, oldest first, after skipping a gap that waited too long."""
        self.skipped = None
        if self.parked and self.next not in self.parked and self._gap_is_stale(now):
            lowest = min(self.parked)
            self.skipped = (self.next, lowest - 1)
            self.next = lowest
        due = []
        while self.next in self.parked:
            due.append(self.parked.pop(self.next))
            self.next += 1
        if not self.parked:
            self.gap_since = None
        elif due:
            self.gap_since = now
        return due

    @property
    def waiting(self):
        """True while items are parked behind a gap."""
        return bool(self.parked)

    def _gap_is_stale(self, now):
        too_old = self.gap_since is not None and now - self.gap_since > self.gap_seconds
        return too_old or (self.max_parked is not None and len(self.parked) > self.max_parked)
