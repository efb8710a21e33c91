"""Raises on every call: shows how a trigger's error behaviour (log, retry, disable) works.

Trigger: any WAL trigger. The exception and its traceback land in
system.processing_engine_logs; other triggers are not affected.
"""


def check(rows):
    raise ValueError(f"boom: refusing {len(rows)} rows")


def process_writes(influxdb3_local, table_batches, args=None):
    for batch in table_batches:
        check(batch["rows"])
