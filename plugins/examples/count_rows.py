"""Counts the rows of every WAL flush, per table, and writes the counts back.

Trigger: table:NAME or all_tables.
Arguments: `measurement` (optional) names the table the counts go to (default `row_counts`).
Writes: MEASUREMENT,table=NAME rows=Ni  to the trigger's database.
"""


def process_writes(influxdb3_local, table_batches, args=None):
    measurement = (args or {}).get("measurement", "row_counts")
    for batch in table_batches:
        rows = len(batch["rows"])
        influxdb3_local.info("table", batch["table_name"], "had", rows, "rows")
        line = LineBuilder(measurement).tag("table", batch["table_name"]).int64_field("rows", rows)
        # Buffered: written when this call returns successfully.
        influxdb3_local.write(line)
