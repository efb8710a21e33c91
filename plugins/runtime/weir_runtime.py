"""The plugin-facing Python runtime of Weir, compiled into the server binary.

It defines what every plugin module finds in ``builtins`` without an import: ``LineBuilder`` and
its exception classes, with the API of InfluxDB 3's processing engine. Unlike the LineBuilder in
the InfluxDB docs, it escapes correctly: whatever ``build()`` returns parses back to the same
measurement, tags and field values, and what line protocol cannot carry (a newline in a name or
tag value, an empty tag value, NaN or infinity) is refused with a clear error when it is set,
not when the write fails later.

It also holds ``TableBatch``, the dict a WAL trigger receives per table, which builds its
``"arrow"`` entry (a ``pyarrow.RecordBatch``) only when a plugin asks for it, and
``_response``, which turns whatever a request plugin returned into (status, headers, body),
and ``CallTime``, the ``call_time`` a schedule plugin gets.

It never touches the server itself: the Rust side calls into it, not the other way round.
"""

import datetime
import json
import math

__all__ = [
    "InfluxDBError",
    "InvalidMeasurementError",
    "InvalidKeyError",
    "InvalidLineError",
    "LineBuilder",
]


class CallTime(datetime.datetime):
    """A schedule plugin's ``call_time``: naive and holding UTC, as InfluxDB 3 passes it, but
    read as UTC by ``timestamp()`` and ``astimezone()`` whatever the server's time zone. Plugins
    use both ``call_time.replace(tzinfo=timezone.utc)`` and ``call_time.timestamp()``; with a
    plain naive datetime the second is off by the server's UTC offset. Arithmetic keeps the
    class (``call_time - timedelta(hours=1)`` is still read as UTC); an aware one behaves as any.
    """

    def timestamp(self):
        if self.tzinfo is None:
            return datetime.datetime.timestamp(self.replace(tzinfo=datetime.timezone.utc))
        return datetime.datetime.timestamp(self)

    def astimezone(self, tz=None):
        if self.tzinfo is None:
            return datetime.datetime.astimezone(self.replace(tzinfo=datetime.timezone.utc), tz)
        return datetime.datetime.astimezone(self, tz)


class InfluxDBError(Exception):
    """Base class of the errors LineBuilder raises."""


class InvalidMeasurementError(InfluxDBError):
    """The measurement name cannot be written as line protocol."""


class InvalidKeyError(InfluxDBError):
    """A tag or field key cannot be written as line protocol."""


class InvalidLineError(InfluxDBError):
    """The line as a whole, or a value in it, cannot be written as line protocol."""


def _escape(value, specials):
    # Backslash first, so the escapes added for the other characters are not escaped again.
    out = value.replace("\\", "\\\\")
    for ch in specials:
        out = out.replace(ch, "\\" + ch)
    return out


def _no_newline(value, what, error):
    if "\n" in value or "\r" in value:
        raise error(f"{what} {value!r} contains a line break, which line protocol cannot carry")


class LineBuilder:
    """Builds one line of line protocol."""

    def __init__(self, measurement):
        if not isinstance(measurement, str):
            raise InvalidMeasurementError(f"measurement must be a str, not {type(measurement).__name__}")
        if not measurement:
            raise InvalidMeasurementError("measurement name cannot be empty")
        if measurement.startswith("#"):
            raise InvalidMeasurementError(f"measurement name {measurement!r} cannot start with '#' (a comment)")
        if measurement.startswith("\t"):
            # Leading whitespace before a line is skipped, and a tab has no escape.
            raise InvalidMeasurementError(f"measurement name {measurement!r} cannot start with a tab")
        _no_newline(measurement, "measurement name", InvalidMeasurementError)
        self.measurement = measurement
        self.tags = {}
        self.fields = {}
        self._timestamp_ns = None

    def _validate_key(self, key, key_type):
        if not isinstance(key, str):
            raise InvalidKeyError(f"{key_type} key must be a str, not {type(key).__name__}")
        if not key:
            raise InvalidKeyError(f"{key_type} key cannot be empty")
        for ch, name in ((" ", "spaces"), (",", "commas"), ("=", "equals signs")):
            if ch in key:
                raise InvalidKeyError(f"{key_type} key {key!r} cannot contain {name}")
        _no_newline(key, f"{key_type} key", InvalidKeyError)
        if key == "time":
            raise InvalidKeyError(f"{key_type} key 'time' is reserved for the timestamp")

    def tag(self, key, value):
        """Adds a tag; the value is converted with ``str()``."""
        self._validate_key(key, "tag")
        value = str(value)
        if value == "":
            raise InvalidLineError(f"tag {key!r} has an empty value, which line protocol cannot carry; leave the tag out")
        _no_newline(value, f"value of tag {key!r}", InvalidLineError)
        self.tags[key] = value
        return self

    def int64_field(self, key, value):
        self._validate_key(key, "field")
        value = _integer(key, value)
        if not -(2**63) <= value < 2**63:
            raise InvalidLineError(f"int64 field {key!r} value {value} is out of range")
        self.fields[key] = f"{value}i"
        return self

    def uint64_field(self, key, value):
        self._validate_key(key, "field")
        value = _integer(key, value)
        if value < 0:
            raise InvalidLineError(f"uint64 field {key!r} cannot be negative ({value})")
        if value >= 2**64:
            raise InvalidLineError(f"uint64 field {key!r} value {value} is out of range")
        self.fields[key] = f"{value}u"
        return self

    def float64_field(self, key, value):
        self._validate_key(key, "field")
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise InvalidLineError(f"float64 field {key!r} needs a number, not {value!r}") from None
        if not math.isfinite(value):
            raise InvalidLineError(f"float64 field {key!r} is {value}, which line protocol cannot carry")
        # repr() is the shortest string that reads back as the same float.
        text = repr(value)
        if "." not in text and "e" not in text:
            text += ".0"
        self.fields[key] = text
        return self

    def string_field(self, key, value):
        self._validate_key(key, "field")
        if not isinstance(value, str):
            value = str(value)
        self.fields[key] = '"' + _escape(value, '"') + '"'
        return self

    def bool_field(self, key, value):
        self._validate_key(key, "field")
        self.fields[key] = "t" if value else "f"
        return self

    def time_ns(self, timestamp_ns):
        """Sets the timestamp in nanoseconds since the epoch (None: the server's time)."""
        if timestamp_ns is not None:
            timestamp_ns = _integer("time", timestamp_ns)
            if not -(2**63) <= timestamp_ns < 2**63:
                raise InvalidLineError(f"timestamp {timestamp_ns} is out of range")
        self._timestamp_ns = timestamp_ns
        return self

    def build(self):
        if not self.fields:
            raise InvalidLineError(f"at least one field is required: {self.measurement!r}")
        line = _escape(self.measurement, ", ")
        for key, value in self.tags.items():
            line += "," + _escape(key, ",= ") + "=" + _escape(value, ",= ")
        line += " " + ",".join(_escape(k, ",= ") + "=" + v for k, v in self.fields.items())
        if self._timestamp_ns is not None:
            line += f" {self._timestamp_ns}"
        return line

    def __repr__(self):
        try:
            return f"LineBuilder({self.build()!r})"
        except InfluxDBError:
            return f"LineBuilder({self.measurement!r}, incomplete)"


def _integer(key, value):
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise InvalidLineError(f"field {key!r} needs an integer, not {value!r}")


class TableBatch(dict):
    """One table's rows of a WAL flush: ``{"table_name": str, "rows": [dict, ...]}``.

    ``batch["arrow"]`` gives the same rows as a ``pyarrow.RecordBatch`` that shares the server's
    memory (Arrow C Data Interface); it is built on first use and needs pyarrow installed.
    """

    __slots__ = ("_arrow_source",)

    def __missing__(self, key):
        if key == "arrow":
            value = self._arrow_source()
            self["arrow"] = value
            return value
        raise KeyError(key)

    def get(self, key, default=None):
        if key == "arrow" and not dict.__contains__(self, "arrow"):
            return self["arrow"]
        return dict.get(self, key, default)


def _is_status(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _body(value):
    """A response body and its default content type."""
    if value is None:
        return b"", None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value), "application/octet-stream"
    if isinstance(value, str):
        return value.encode("utf-8"), "text/html; charset=utf-8"
    if isinstance(value, (dict, list)):
        return json.dumps(value).encode("utf-8"), "application/json"
    raise TypeError(
        f"process_request returned a {type(value).__name__}; return a str, bytes, dict, list, "
        "a (body, status, headers) or (status, headers, body) tuple, or a Flask Response"
    )


def _response(value):
    """Normalizes what ``process_request`` returned into (status, [(name, value)], bytes).

    Accepted: a Flask ``Response`` (anything with ``status_code``, ``headers``, ``get_data``);
    the older ``(status, headers, body)`` tuple; a Flask-style ``(body[, status][, headers])``
    tuple; a ``str`` (text/html), ``dict``/``list`` (JSON), ``bytes``, or ``None`` (empty).
    """
    if hasattr(value, "status_code") and hasattr(value, "get_data"):
        headers = [(str(k), str(v)) for k, v in getattr(value, "headers", {}).items()]
        return int(value.status_code), headers, bytes(value.get_data())
    status, headers = 200, {}
    if isinstance(value, tuple):
        if len(value) == 3 and _is_status(value[0]):
            status, headers, value = value
        elif 1 <= len(value) <= 3:
            value, *rest = value
            for extra in rest:
                if _is_status(extra):
                    status = extra
                elif isinstance(extra, (dict, list)):
                    headers = extra
                else:
                    raise TypeError(f"a response tuple holds a body, a status and headers, not {extra!r}")
        else:
            raise TypeError(f"a response tuple has 1 to 3 items, not {len(value)}")
    if not _is_status(status) or not 100 <= status <= 599:
        raise ValueError(f"response status {status!r} is not an HTTP status code")
    body, content_type = _body(value)
    pairs = list(headers.items()) if isinstance(headers, dict) else [tuple(h) for h in headers]
    pairs = [(str(k), str(v)) for k, v in pairs]
    if content_type and not any(k.lower() == "content-type" for k, _ in pairs):
        pairs.append(("Content-Type", content_type))
    return status, pairs, body
