"""Copies every row it sees into another database.

Trigger: table:NAME or all_tables.
Arguments: `target_db` (required), `sync` ("true" to write before returning and fail loudly).
"""


def process_writes(influxdb3_local, table_batches, args=None):
    target = (args or {}).get("target_db")
    if not target:
        raise ValueError("copy_to_db needs a target_db argument")
    sync = (args or {}).get("sync") == "true"
    for batch in table_batches:
        for row in batch["rows"]:
            line = LineBuilder(batch["table_name"])
            for key, value in row.items():
                if key == "time":
                    line.time_ns(value)
                elif isinstance(value, bool):
                    line.bool_field(key, value)
                elif isinstance(value, int):
                    line.int64_field(key, value)
                elif isinstance(value, float):
                    line.float64_field(key, value)
                else:
                    # Tags and string fields both arrive as str; keep them as string fields.
                    line.string_field(key, value)
            if sync:
                influxdb3_local.write_sync_to_db(target, line)
            else:
                influxdb3_local.write_to_db(target, line)
