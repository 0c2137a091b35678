"""Timestamp columns with Embulk's options: `format` (Ruby strptime, as Embulk's parsers take it),
`timezone` (of values that name none) and `date` (the date of values whose format has none).

Ruby's %N and %L (fractions) read as Python's %f, whose six digits are the most a datetime holds: a
value with more fraction digits keeps the first six. `%s` (seconds since the epoch) reads alone.
Without a format, values are ISO 8601 (datetime.fromisoformat), as before these options.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone, tzinfo
from functools import lru_cache

TIMESTAMP_CACHE = 4096  # audiences repeat dates and times a lot; a hit costs no Python call
RUBY_FRACTIONS = re.compile(r"%[0-9]*[NL]")
LONG_FRACTION = re.compile(r"(\.\d{6})\d+")
DATE_DIRECTIVES = re.compile(r"%[-0-9]*[YymdjFDsxcUWbBhaAe]")
EMBULK_DEFAULT_DATE = "1970-01-01"


def python_format(fmt: str) -> str:
    """An Embulk (Ruby strptime) format as Python's strptime takes it."""
    return RUBY_FRACTIONS.sub("%f", fmt).replace("%:z", "%z").replace("%F", "%Y-%m-%d").replace("%T", "%H:%M:%S")


def zone_of(name: str | None, where: str = "timezone") -> tzinfo | None:
    """A time zone from its IANA name (Asia/Tokyo), UTC, or an offset (+09:00); ValueError if unknown."""
    if name is None:
        return None
    if name.upper() in ("UTC", "Z", "GMT"):
        return timezone.utc
    offset = re.fullmatch(r"([+-])(\d{2}):?(\d{2})", name)
    if offset:
        sign = 1 if offset.group(1) == "+" else -1
        return timezone(sign * timedelta(hours=int(offset.group(2)), minutes=int(offset.group(3))))
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{where}: unknown time zone {name!r} (an IANA name like Asia/Tokyo, UTC, or +09:00)") from None


def date_of(text: str | None, where: str = "date") -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{where}: expected a date like 2026-01-31, got {text!r}") from None


def timestamp_parser(fmt: str | None, zone: str | None = None, day: str | None = None) -> Callable[[str], datetime]:
    """Text -> an aware datetime by `fmt` (None: ISO 8601); values without a zone are in `zone` (UTC by default)."""
    tz = zone_of(zone) or timezone.utc
    if fmt is None:
        return _cached(lambda text: datetime.fromisoformat(text.strip()), tz)
    if fmt.strip() == "%s":
        return _cached(lambda text: datetime.fromtimestamp(int(text.strip()), timezone.utc), tz)
    pattern = python_format(fmt)
    fractions = "%f" in pattern
    missing_date = DATE_DIRECTIVES.search(fmt) is None
    given = date_of(day) or date.fromisoformat(EMBULK_DEFAULT_DATE)

    def parse(text: str) -> datetime:
        try:
            value = datetime.strptime(text, pattern)
        except ValueError:
            if not fractions:
                raise
            value = datetime.strptime(LONG_FRACTION.sub(r"\1", text), pattern)
        return value.replace(year=given.year, month=given.month, day=given.day) if missing_date else value

    return _cached(parse, tz)


def _cached(parse: Callable[[str], datetime], tz: tzinfo) -> Callable[[str], datetime]:
    @lru_cache(maxsize=TIMESTAMP_CACHE)
    def aware(text: str) -> datetime:
        value = parse(text)
        if value.tzinfo is not None:
            return value
        return value.replace(tzinfo=tz)

    return aware
