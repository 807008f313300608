"""Sainte-Laguë (Webster) apportionment with seats already held and room limits, exact and fast.

It exists because every step of the replica division (minimums when they cannot all be met, the
replicas above the minimums, the replicas added to a running plan, the replicas taken away from one)
is the same question: hand out ``amount`` indivisible replicas in proportion to weights, never past
a cluster's room, counting what each cluster already holds.

Definition (the sequential highest-averages method, which this module computes exactly): a cluster
of weight ``w`` that holds ``h`` seats bids ``w / (2h + 1)`` for its next seat; the ``amount`` best
bids win, a higher bid first, equal bids to the cluster that comes first in the tie order (``order``;
by default the names in sorted order); a cluster stops bidding when its room is used up.
Consequences callers rely on:

* The result sums to ``amount`` (the caller guarantees there is room) and each cluster stays
  within its room. Clusters of weight 0 get nothing.
* A cluster whose room is smaller than its share gets its room, and the rest goes to the others in
  proportion to their weights ("spill").
* House monotone: one more replica to hand out never takes a seat from anyone, so results for
  ``n`` and ``n + k`` differ only by ``k`` added seats; starting from the result for ``n`` (as
  ``held``) and handing out ``k`` more gives the result for ``n + k``.
* Deterministic and independent of the order of the mappings (ties by ``order``, exact fractions).

Cost: O(c^2) for c clusters, independent of ``amount`` (2^31-1 replicas cost what 10 do): a
continuous fill gives each cluster within one seat of its result, and a few exchanges of single
seats settle the rest. Small amounts (``SEQUENTIAL_MAX``) are handed out seat by seat in integer
arithmetic instead, O(amount * c): the same result, several times faster than the fractions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction
from math import floor

Rank = tuple[Fraction, int]


def _rank(weight: int, held: int, place: int) -> Rank:
    """The order of the bid for seat ``held + 1``: smaller ranks win (higher bid, then the earlier
    place in the tie order)."""
    return (-Fraction(weight, 2 * held + 1), place)


SEQUENTIAL_MAX = 64
"""Up to this many seats, they are handed out one by one, as the definition says, in integers:
cheaper than the exact fill in fractions below for the small amounts most calls have."""


def _sequential(
    amount: int, weights: Mapping[str, int], held: Mapping[str, int], cap: Mapping[str, int | None]
) -> dict[str, int]:
    """Seats added per bidder, one at a time to the best bid (``weights`` in the tie order, so the
    first of equal bids is the one that comes first). Bids compare exactly: ``w1 / (2h1 + 1) >
    w2 / (2h2 + 1)`` as ``w1 * (2h2 + 1) > w2 * (2h1 + 1)``."""
    added = dict.fromkeys(weights, 0)
    for _ in range(amount):
        best, best_weight, best_odd = "", 0, 1
        for name, weight in weights.items():
            holds = held[name] + added[name]
            top = cap[name]
            if top is not None and holds >= top:
                continue
            odd = 2 * holds + 1
            if not best or weight * best_odd > best_weight * odd:
                best, best_weight, best_odd = name, weight, odd
        added[best] += 1  # the caller made sure there is room for ``amount``
    return added


def _levels(
    amount: int, weights: Mapping[str, int], held: Mapping[str, int], cap: Mapping[str, int | None]
) -> dict[str, Fraction]:
    """The continuous fill: level ``clamp(lam * w, held, cap)`` per cluster, summing to ``amount``
    above what is held. Found by walking the breakpoints of this piecewise-linear sum."""

    def filled(lam: Fraction) -> Fraction:
        total = Fraction(0)
        for name, weight in weights.items():
            level = max(Fraction(held[name]), lam * weight)
            top = cap[name]
            total += (level if top is None else min(level, Fraction(top))) - held[name]
        return total

    points = {Fraction(held[name], weight) for name, weight in weights.items()}
    points |= {Fraction(top, weights[name]) for name, top in cap.items() if top is not None}
    low = Fraction(0)
    for point in sorted(points):
        if filled(point) >= amount:
            break
        low = point

    def rising(name: str, weight: int) -> bool:  # the cluster's level grows with lam just past low
        top = cap[name]
        return Fraction(held[name], weight) <= low and (top is None or Fraction(top, weight) > low)

    slope = sum(weight for name, weight in weights.items() if rising(name, weight))
    lam = low + (amount - filled(low)) / slope if slope else low
    levels = {}
    for name, weight in weights.items():
        level = max(Fraction(held[name]), lam * weight)
        top = cap[name]
        levels[name] = level if top is None else min(level, Fraction(top))
    return levels


def apportion(
    amount: int,
    weights: Mapping[str, int],
    *,
    held: Mapping[str, int],
    room: Mapping[str, int | None],
    order: Sequence[str] | None = None,
) -> dict[str, int]:
    """Seats added per cluster (every key of ``weights``, in name order; 0 allowed): ``amount`` in
    all, each within ``room[name]`` (None: unbounded), by the bids defined in the module docstring,
    which count ``held[name]`` seats as already won; equal bids go first to the name that comes
    first in ``order`` (it must list every key of ``weights``; None: name order). Raises ValueError
    when the room does not suffice."""
    added = dict.fromkeys(sorted(weights), 0)
    ranked = added if order is None else order
    if order is not None and sorted(order) != list(added):
        raise ValueError(f"the tie order {list(order)} does not list exactly {list(added)}")
    bidders = {name: weights[name] for name in ranked if weights[name] > 0 and room.get(name, None) != 0}
    if amount < 0:
        raise ValueError(f"cannot hand out a negative number of replicas: {amount}")
    limits = [room.get(name) for name in bidders]
    if amount and (not bidders or (None not in limits and sum(r or 0 for r in limits) < amount)):
        raise ValueError(f"no room for {amount} replicas among {sorted(bidders)}")
    if amount == 0:
        return added
    start = {name: held.get(name, 0) for name in bidders}
    cap: dict[str, int | None] = {}
    for name in bidders:
        limit = room.get(name)
        cap[name] = None if limit is None else start[name] + limit
    seats = _sequential if amount <= SEQUENTIAL_MAX else _by_fill
    added.update(seats(amount, bidders, start, cap))
    return added


def _by_fill(
    amount: int, bidders: Mapping[str, int], start: Mapping[str, int], cap: Mapping[str, int | None]
) -> dict[str, int]:
    """Seats added per bidder (``bidders`` in the tie order): the continuous fill, then single seats
    and exchanges."""
    added = dict.fromkeys(bidders, 0)
    place = {name: i for i, name in enumerate(bidders)}
    for name, level in _levels(amount, bidders, start, cap).items():
        added[name] = floor(level) - start[name]

    def has_room(name: str) -> bool:
        top = cap[name]
        return top is None or start[name] + added[name] < top

    def next_bid(name: str) -> Rank:
        return _rank(bidders[name], start[name] + added[name], place[name])

    def last_bid(name: str) -> Rank:
        return _rank(bidders[name], start[name] + added[name] - 1, place[name])

    for _ in range(amount - sum(added.values())):  # fewer than one per cluster after the fill
        best = min((name for name in bidders if has_room(name)), key=next_bid)
        added[best] += 1
    while True:  # exchange single seats until every won bid ranks before every open one
        open_bids = [name for name in bidders if has_room(name)]
        won = [name for name in bidders if added[name] > 0]
        if not open_bids or not won:
            return added
        taker = min(open_bids, key=next_bid)
        giver = max(won, key=last_bid)
        if next_bid(taker) >= last_bid(giver):
            return added
        added[giver] -= 1
        added[taker] += 1
