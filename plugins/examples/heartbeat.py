"""Writes a heartbeat row on a schedule, stamped with the scheduled instant.

Trigger: every:DURATION or cron:EXPRESSION.
Arguments: `source` (optional) tags the heartbeat.
Writes: heartbeat,source=S scheduled_ns=Ni  at time = call_time
"""

from datetime import timezone


def process_scheduled_call(influxdb3_local, call_time, args=None):
    # call_time is naive and holds UTC, as in InfluxDB 3: make it aware before converting.
    scheduled = call_time.replace(tzinfo=timezone.utc)
    ns = int(scheduled.timestamp()) * 1_000_000_000 + scheduled.microsecond * 1000
    source = (args or {}).get("source", "weir")
    influxdb3_local.write(LineBuilder("heartbeat").tag("source", source).int64_field("scheduled_ns", ns).time_ns(ns))
