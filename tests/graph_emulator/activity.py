"""Deterministic Microsoft 365 usage for the report emulator.

Every value is a pure function of (tenant seed, object id, day), so the same day reads the same in
every report, in `date=` and `period=` requests alike, and moving `tenant.today` forward only adds
days: history never changes.

Days are grouped in 64-day blocks (`date.toordinal() >> 6`). For each (object, workload, block)
a few 64-bit pseudo-random words are mixed into a bit mask of active days, so "how many active days
in a window" is a popcount and "last activity on or before a day" is a bit scan: a 200,000-row
D180 report stays cheap. Per-day counts are `rate x active day`, with the rate fixed per block, so
the sum of seven `date=` rows equals the `period='D7'` row.

Population shape (the product exists to find wasted seats):

- about 70 % of people are "regular": active on most weekdays in the workloads they adopted;
- about 24 % are "intermittent": they alternate active stretches and long idle stretches on a
  400-day cycle, so on any day roughly half of them have been idle for 30+ days, many for 90+;
- about 6 % never use anything they are licensed for.

Disabled accounts and leavers stop (see reports.py); tests that need a particular user idle can
pin it with `ActivityModel.last_active_override`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from typing import Final

_MASK64: Final = (1 << 64) - 1
_CYCLE_DAYS: Final = 400
_EARLIEST: Final = date(
    2015, 1, 1
)  # nothing happened before this day, whatever createdDateTime says


@dataclass(frozen=True)
class Workload:
    """One kind of activity: who adopts it, how often, and whether idleness stops it."""

    index: int
    adoption: float  # share of eligible people who ever use it
    gated: bool = True  # False: happens whatever the person does (mail arriving in a mailbox)
    weekend_share: float = 0.25  # weekend activity relative to weekdays


WORKLOADS: Final[dict[str, Workload]] = {
    "exchange": Workload(1, 0.97),
    "onedrive": Workload(2, 0.8),
    "sharepoint": Workload(3, 0.75),
    "teams": Workload(4, 0.9),
    "yammer": Workload(5, 0.15),
    "skype": Workload(6, 0.0),  # Skype for Business Online is retired
    "office": Workload(7, 0.85),  # Microsoft 365 Apps (desktop/mobile/web Office)
    "mail_received": Workload(8, 1.0, gated=False, weekend_share=0.5),
    "site": Workload(9, 0.9, gated=False),  # SharePoint / group site activity (not a person)
    "group_mail": Workload(10, 0.9, gated=False),
    "group_yammer": Workload(11, 0.5, gated=False),
    "copilot": Workload(12, 0.6),  # Microsoft 365 Copilot, for those holding its license
    "team": Workload(13, 0.85, gated=False),  # a team's channel activity (not a person)
}


def _mix(value: int) -> int:
    """splitmix64 finaliser: a fast, well-spread 64-bit hash of an integer."""
    value = (value + 0x9E3779B97F4A7C15) & _MASK64
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK64
    return value ^ (value >> 31)


def _weekday_masks() -> tuple[int, ...]:
    """Bit i set when day (block * 64 + i) is Monday to Friday; depends only on block % 7."""
    masks = []
    for residue in range(7):
        mask = 0
        for bit in range(64):
            # date.fromordinal(1) is a Monday, so weekday(ordinal) == (ordinal - 1) % 7.
            if (residue * 64 + bit - 1) % 7 < 5:
                mask |= 1 << bit
        masks.append(mask)
    return tuple(masks)


_WEEKDAYS: Final = _weekday_masks()


def range_bits(first: int, last: int, block: int) -> int:
    """Bits of `block` whose day ordinals lie in [first, last]."""
    lo = max(first - (block << 6), 0)
    hi = min(last - (block << 6), 63)
    if lo > hi:
        return 0
    return ((1 << (hi - lo + 1)) - 1) << lo


@lru_cache(maxsize=1024)
def _text_key(text: str) -> int:
    """A stable 64-bit value for a salt string (str hashes are randomised per process)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


@lru_cache(maxsize=1 << 16)
def _salt_key(salt: tuple[str | int, ...]) -> int:
    """One 64-bit value for a tuple of salts."""
    value = 0x5A17
    for part in salt:
        value = _mix(value ^ (_text_key(part) if isinstance(part, str) else part))
    return value


def object_key(seed: object, object_id: str) -> int:
    """A stable 64-bit key for one directory object under one tenant seed."""
    digest = hashlib.blake2b(f"{seed}|{object_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


@dataclass
class ActivityModel:
    """Factory for per-object activity, with test overrides."""

    seed: object
    # user id -> no activity of the person's own after this day (None: never any). For tests that
    # need a particular seat idle.
    last_active_override: dict[str, date | None] = field(default_factory=dict)

    def subject(
        self,
        object_id: str,
        created: date | None = None,
        ended: date | None = None,
        idle_since: date | None = None,
    ) -> Subject:
        """Activity of an object existing from `created` until `ended`.

        After `idle_since` (a disabled account, a leaver) the person does nothing themselves;
        things still happen to them (mail arrives) until `ended`.
        """
        cutoff = idle_since.toordinal() if idle_since else None
        if object_id in self.last_active_override:
            pinned = self.last_active_override[object_id]
            cutoff = min(cutoff or 10**7, pinned.toordinal() if pinned else 0)
        return Subject(object_key(self.seed, object_id), created or _EARLIEST, ended, cutoff)


class Subject:
    """The activity of one object; all queries are pure functions of the key and the days."""

    __slots__ = ("_cache", "_cutoff", "_first", "_last", "cycle_length", "key", "kind", "phase")

    def __init__(self, key: int, created: date, ended: date | None, cutoff: int | None) -> None:
        self.key = key
        self._first = max(created, _EARLIEST).toordinal()
        self._last = ended.toordinal() if ended else 10**7
        roll = _mix(key ^ 0x51) % 100
        self.kind = "regular" if roll < 70 else "intermittent" if roll < 94 else "never"
        self.phase = _mix(key ^ 0x52) % _CYCLE_DAYS
        self.cycle_length = 120 + _mix(key ^ 0x53) % 160  # active days per 400-day cycle
        self._cutoff = cutoff  # ordinal of the last day with activity of one's own, if any
        self._cache: dict[tuple[int, int], int] = {}

    # -- per-object traits -------------------------------------------------------------------

    def uniform(self, *salt: str | int) -> float:
        """A stable number in [0, 1) for this object and the given salt."""
        return _mix(self.key ^ _salt_key(salt)) / 2.0**64

    def choice(self, options: tuple[str, ...], *salt: str | int) -> str:
        """A stable pick among options."""
        return options[int(self.uniform(*salt) * len(options))]

    def adopts(self, workload: str) -> bool:
        """Whether this person ever uses the workload."""
        spec = WORKLOADS[workload]
        if spec.gated and self.kind == "never":
            return False
        return self.uniform("adopt", spec.index) < spec.adoption

    # -- day masks ---------------------------------------------------------------------------

    def _lifetime(self, block: int, gated: bool) -> int:
        mask = range_bits(self._first, self._last, block)
        if not gated or not mask:
            return mask
        if self.kind == "never":
            return 0
        if self._cutoff is not None:
            mask &= range_bits(0, self._cutoff, block)
        if self.kind == "intermittent":
            first_day = block << 6
            allowed = 0
            for cycle in range(
                (first_day + self.phase) // _CYCLE_DAYS,
                (first_day + 63 + self.phase) // _CYCLE_DAYS + 1,
            ):
                start = cycle * _CYCLE_DAYS - self.phase
                allowed |= range_bits(start, start + self.cycle_length - 1, block)
            return mask & allowed
        return mask

    def mask(self, workload: str, block: int) -> int:
        """Active days of `workload` in `block` as a 64-bit mask."""
        spec = WORKLOADS[workload]
        cache_key = (spec.index, block)
        cached = self._cache.get(cache_key)
        if cached is not None:
            return cached
        mask = 0
        if self.adopts(workload):
            base = self.key ^ (spec.index << 56) ^ (block << 8)
            level = int(self.uniform("intensity", spec.index) * 4)
            busy = _mix(base ^ 1)
            if level == 0:
                busy &= _mix(base ^ 2)  # ~25 % of weekdays
            elif level == 2:
                busy |= _mix(base ^ 2)  # ~75 %
            elif level == 3:
                busy |= _mix(base ^ 2) | _mix(base ^ 3)  # ~88 %; level 1: ~50 %
            weekdays = _WEEKDAYS[block % 7]
            weekend = _mix(base ^ 4)
            if spec.weekend_share < 0.5:
                weekend &= _mix(base ^ 5)
            mask = (busy & weekdays) | (busy & weekend & ~weekdays & _MASK64)
            mask &= self._lifetime(block, spec.gated)
        self._cache[cache_key] = mask
        return mask

    # -- queries -----------------------------------------------------------------------------

    def active_on(self, workload: str, day: date) -> bool:
        """Whether there was activity on that day."""
        ordinal = day.toordinal()
        return bool(self.mask(workload, ordinal >> 6) >> (ordinal & 63) & 1)

    def active_days(self, workload: str, start: date, end: date) -> int:
        """Number of active days in [start, end]."""
        first, last = start.toordinal(), end.toordinal()
        return sum(
            (self.mask(workload, block) & range_bits(first, last, block)).bit_count()
            for block in range(first >> 6, (last >> 6) + 1)
        )

    def last_active(self, workload: str, on_or_before: date) -> date | None:
        """The latest active day not after `on_or_before`."""
        last = on_or_before.toordinal()
        if not self.adopts(workload):
            return None
        for block in range(last >> 6, (self._first >> 6) - 1, -1):
            bits = self.mask(workload, block) & range_bits(0, last, block)
            if bits:
                return date.fromordinal((block << 6) + bits.bit_length() - 1)
        return None

    def count(self, workload: str, metric: str, start: date, end: date, mean: float) -> int:
        """Sum over active days in [start, end] of a per-day count averaging about `mean`."""
        first, last = start.toordinal(), end.toordinal()
        total = 0
        for block in range(first >> 6, (last >> 6) + 1):
            days = (self.mask(workload, block) & range_bits(first, last, block)).bit_count()
            if days:
                total += days * int(self.uniform(metric, block) * 2 * mean + 0.5)
        return total

    def growing(self, metric: str, day: date, base: float, per_day: float) -> int:
        """A quantity (bytes, items) that grows from `base` since creation until `day`."""
        age = max(day.toordinal() - self._first, 0)
        scale = 0.2 + 1.6 * self.uniform(metric, "scale")
        return int(scale * (base + per_day * age))
