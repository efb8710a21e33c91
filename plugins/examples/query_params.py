"""Queries with parameters after each flush and writes what it found.

Trigger: table:NAME.
Arguments: `host` (the tag value to look up), `table` (default: the trigger's table).
Writes: host_summary,host=H points=Ni,max=F
"""


def process_writes(influxdb3_local, table_batches, args=None):
    host = (args or {}).get("host", "a")
    for batch in table_batches:
        table = (args or {}).get("table", batch["table_name"])
        rows = influxdb3_local.query(
            f'SELECT count(*) AS points, max(usage) AS max FROM "{table}" WHERE host = $host',
            {"host": host},
        )
        influxdb3_local.info("query answered", rows)
        if rows and rows[0]["points"]:
            influxdb3_local.write(
                LineBuilder("host_summary")
                .tag("host", host)
                .int64_field("points", rows[0]["points"])
                .float64_field("max", rows[0]["max"])
            )
