"""A sandbox's series: every sample of the last hour, a point a minute (mean CPU, peak memory and disk)
for a day and one per quarter hour for 30 days before that, in a bounded number of bytes whatever its
life; queries by whole seconds, oldest first."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import pairwise

from hutch.runtime.capabilities import MetricSample
from hutch.runtime.series import DAY_S, HOUR_S, RECORD, Series, retention

T0 = 1_700_000_100.0  # on a whole quarter hour (and so minute)


def _sample(at: float, cpu: float = 10.0, mem: int = 1000, disk: int = 500) -> MetricSample:
    return MetricSample(datetime.fromtimestamp(at, UTC), 2, cpu, mem, 4096, mem // 10, disk, 8192)


def _fill(series: Series, seconds: float, every_s: float, start: float = T0) -> float:
    """Samples every ``every_s`` for ``seconds``; returns the time of the last one."""
    count = int(seconds // every_s)
    for i in range(count):
        series.add(_sample(start + i * every_s))
    return start + (count - 1) * every_s


def test_the_last_hour_keeps_every_sample() -> None:
    series = Series(retention(5))
    last = _fill(series, HOUR_S, 5)
    samples = series.between()
    assert len(samples) == 720
    assert samples[0].timestamp.timestamp() == T0 and samples[-1].timestamp.timestamp() == last
    assert series.latest() == samples[-1]


def test_before_the_last_hour_one_point_a_minute() -> None:
    series = Series(retention(5))
    _fill(series, 2 * HOUR_S, 5)
    samples = series.between()
    times = [sample.timestamp.timestamp() for sample in samples]
    assert times == sorted(times)
    raw = [t for t in times if t >= T0 + HOUR_S]
    assert len(raw) == 720
    minutes = [t for t in times if t < T0 + HOUR_S]
    # One a minute, each at its minute's last sample; the minute the raw hour begins in is cut off.
    assert len(minutes) == 60
    assert all(later - earlier == 60 for earlier, later in pairwise(minutes))
    assert minutes[0] == T0 + 55


def test_a_minute_point_has_the_mean_cpu_and_the_peaks() -> None:
    series = Series(retention(5))
    for i in range(12):  # one minute: CPU 0, 10, …, 110 → mean 55; memory peaks at the 4th sample
        series.add(_sample(T0 + 5 * i, cpu=10.0 * i, mem=5000 if i == 3 else 1000, disk=100 * i))
    _fill(series, 2 * HOUR_S, 5, start=T0 + 60)  # pushes that minute out of the raw hour
    [minute] = series.between(T0, T0 + 59)
    assert minute.cpu_used_pct == 55.0
    assert (minute.mem_used, minute.mem_cache, minute.disk_used) == (5000, 500, 1100)
    assert (minute.cpu_count, minute.mem_total, minute.disk_total) == (2, 4096, 8192)
    assert minute.timestamp.timestamp() == T0 + 55


def test_a_range_takes_whole_seconds_on_both_ends() -> None:
    series = Series(retention(1))
    for i in range(10):
        series.add(_sample(T0 + i + 0.5))
    picked = series.between(T0 + 3, T0 + 5)
    assert [int(sample.timestamp.timestamp()) for sample in picked] == [T0 + 3, T0 + 4, T0 + 5]
    assert series.between(T0 + 20) == []
    assert series.between(end=T0 - 1) == []
    assert len(series.between(start=T0 + 8)) == 2


def test_a_day_of_samples_costs_about_120_kb() -> None:
    series = Series(retention(5))
    _fill(series, DAY_S, 5)
    # 720 samples, 1439 finished minutes, 95 finished quarter hours.
    assert series.nbytes == (720 + 1439 + 95) * RECORD.size
    assert series.nbytes < 122_000
    samples = series.between()
    assert samples[0].timestamp.timestamp() < T0 + 15 * 60  # the first quarter hour is still there


def test_memory_is_bounded_whatever_the_life() -> None:
    interval = 60
    series = Series(retention(interval))
    last = _fill(series, 40 * DAY_S, interval)
    assert series.nbytes == sum(tier.capacity for tier in retention(interval)) * RECORD.size
    oldest = series.between()[0].timestamp.timestamp()
    assert last - 30 * DAY_S <= oldest < last - 29 * DAY_S


def test_an_empty_series() -> None:
    series = Series(retention(5))
    assert series.between() == []
    assert series.latest() is None
    assert series.nbytes == 0
