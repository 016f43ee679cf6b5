"""A sandbox's samples, bounded in memory whatever its life: every sample of its last hour, then one point a
minute for a day and one per quarter hour for 30 days; anything older is dropped.

Each resolution is a ring of packed records (54 bytes a point) that overwrites its oldest point once full,
so a sandbox never holds more than the three rings' capacities: at 5 s between samples, 720 + 1440 + 2880
points, 272 kB. A coarse point stands for the samples of its minute (or quarter hour): their mean CPU use,
their peak memory, cache and disk use, and the last limits; its timestamp is its last sample's. A query
answers from the finest resolution that still has the time asked for, and from coarser ones before that.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

from .capabilities import MetricSample

HOUR_S = 3600
DAY_S = 86_400


class Point(NamedTuple):
    """A sample as a ring keeps it (the timestamp in unix seconds)."""

    timestamp: float
    cpu_used_pct: float
    cpu_count: int
    mem_used: int
    mem_total: int
    mem_cache: int
    disk_used: int
    disk_total: int


RECORD = struct.Struct("<dfH5Q")  # a Point, packed


@dataclass(frozen=True)
class Tier:
    """One resolution: a point per ``step_s`` (0: every sample), at most ``capacity`` points."""

    step_s: int
    capacity: int


def retention(interval_s: float) -> tuple[Tier, ...]:
    """The resolutions of a series sampled every ``interval_s``, finest first."""
    return (
        Tier(0, math.ceil(HOUR_S / interval_s)),
        Tier(60, DAY_S // 60),
        Tier(900, 30 * DAY_S // 900),
    )


class _Ring:
    """At most ``capacity`` packed points in one buffer, oldest first; a full ring overwrites its oldest."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.buffer = bytearray()
        self._oldest = 0  # where the oldest point is once the ring is full

    def __len__(self) -> int:
        return len(self.buffer) // RECORD.size

    def append(self, point: Point) -> None:
        if len(self) < self.capacity:
            self.buffer += RECORD.pack(*point)
            return
        RECORD.pack_into(self.buffer, self._oldest * RECORD.size, *point)
        self._oldest = (self._oldest + 1) % self.capacity

    def __iter__(self) -> Iterator[Point]:
        count = len(self)
        for i in range(count):
            yield self._at((self._oldest + i) % count)

    def first(self) -> Point | None:
        return self._at(self._oldest) if self.buffer else None

    def last(self) -> Point | None:
        return self._at((self._oldest - 1) % len(self)) if self.buffer else None

    def _at(self, index: int) -> Point:
        return Point._make(RECORD.unpack_from(self.buffer, index * RECORD.size))


class _Bucket:
    """The samples of one coarse step so far, folded into the point they make."""

    def __init__(self, key: int, point: Point) -> None:
        self.key = key
        self.count = 1
        self.cpu_sum = point.cpu_used_pct
        self.peak = point
        self.last = point

    def fold(self, point: Point) -> None:
        self.count += 1
        self.cpu_sum += point.cpu_used_pct
        self.last = point
        self.peak = self.peak._replace(
            mem_used=max(self.peak.mem_used, point.mem_used),
            mem_cache=max(self.peak.mem_cache, point.mem_cache),
            disk_used=max(self.peak.disk_used, point.disk_used),
        )

    def point(self) -> Point:
        return self.last._replace(
            cpu_used_pct=self.cpu_sum / self.count,
            mem_used=self.peak.mem_used,
            mem_cache=self.peak.mem_cache,
            disk_used=self.peak.disk_used,
        )


class Series:
    """One sandbox's samples at the resolutions of ``tiers`` (finest first; the first keeps every sample)."""

    def __init__(self, tiers: tuple[Tier, ...]) -> None:
        self._tiers = tiers
        self._rings = [_Ring(tier.capacity) for tier in tiers]
        self._buckets: list[_Bucket | None] = [None] * len(tiers)

    def add(self, sample: MetricSample) -> None:
        point = _point(sample)
        for i, (tier, ring) in enumerate(zip(self._tiers, self._rings, strict=True)):
            if tier.step_s == 0:
                ring.append(point)
                continue
            key = int(point.timestamp // tier.step_s)
            bucket = self._buckets[i]
            if bucket is not None and bucket.key == key:
                bucket.fold(point)
                continue
            if bucket is not None:
                ring.append(bucket.point())
            self._buckets[i] = _Bucket(key, point)

    def between(self, start: float | None = None, end: float | None = None) -> list[MetricSample]:
        """The points whose whole second lies in [``start``, ``end``] (unix seconds, either open), oldest
        first: each resolution's from before the oldest point of the finer ones."""
        low = -math.inf if start is None else start
        high = math.inf if end is None else end
        parts: list[list[MetricSample]] = []
        covered_from = math.inf
        for ring in self._rings:
            first = ring.first()
            if first is None:
                continue
            parts.append(
                [
                    _sample(point)
                    for point in ring
                    if point.timestamp < covered_from and low <= math.floor(point.timestamp) <= high
                ]
            )
            covered_from = min(covered_from, first.timestamp)
        return [sample for part in reversed(parts) for sample in part]

    def latest(self) -> MetricSample | None:
        last = self._rings[0].last()
        return None if last is None else _sample(last)

    @property
    def nbytes(self) -> int:
        """The bytes its points take (the rings' buffers)."""
        return sum(len(ring.buffer) for ring in self._rings)


def _point(sample: MetricSample) -> Point:
    return Point(
        sample.timestamp.timestamp(),
        sample.cpu_used_pct,
        sample.cpu_count,
        sample.mem_used,
        sample.mem_total,
        sample.mem_cache,
        sample.disk_used,
        sample.disk_total,
    )


def _sample(point: Point) -> MetricSample:
    return MetricSample(
        timestamp=datetime.fromtimestamp(point.timestamp, UTC),
        cpu_count=point.cpu_count,
        cpu_used_pct=round(point.cpu_used_pct, 2),
        mem_used=point.mem_used,
        mem_total=point.mem_total,
        mem_cache=point.mem_cache,
        disk_used=point.disk_used,
        disk_total=point.disk_total,
    )
