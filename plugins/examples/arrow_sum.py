"""Sums a column with pyarrow, reading the flush's rows as a zero-copy Arrow RecordBatch.

Needs pyarrow in the plugin environment (`weir install package pyarrow`).
Trigger: table:NAME. Arguments: `column` (default `usage`).
Writes: arrow_sums table=NAME,rows=Ni,sum=F
"""

import pyarrow.compute as pc


def process_writes(influxdb3_local, table_batches, args=None):
    column = (args or {}).get("column", "usage")
    for batch in table_batches:
        record_batch = batch["arrow"]  # a pyarrow.RecordBatch sharing the server's memory
        total = pc.sum(record_batch.column(column)).as_py() or 0.0
        influxdb3_local.write(
            LineBuilder("arrow_sums")
            .tag("table", batch["table_name"])
            .int64_field("rows", record_batch.num_rows)
            .float64_field("sum", float(total))
        )
