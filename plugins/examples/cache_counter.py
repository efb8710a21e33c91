"""Keeps running totals in the trigger's cache and in the global cache.

Trigger: any WAL trigger.
Arguments: `ttl` (seconds, optional) for the per-trigger total.
Writes: cache_totals trigger_total=Ni,global_total=Ni,calls=Ni after each call.
"""


def process_writes(influxdb3_local, table_batches, args=None):
    ttl = float(args["ttl"]) if args and "ttl" in args else None
    rows = sum(len(b["rows"]) for b in table_batches)
    cache = influxdb3_local.cache
    total = cache.get("total", default=0) + rows
    cache.put("total", total, ttl=ttl)
    calls = cache.get("calls", default=0) + 1
    cache.put("calls", calls)
    # Shared by every trigger on the server.
    global_total = cache.get("total", default=0, use_global=True) + rows
    cache.put("total", global_total, use_global=True)
    influxdb3_local.write(
        LineBuilder("cache_totals")
        .int64_field("trigger_total", total)
        .int64_field("global_total", global_total)
        .int64_field("calls", calls)
    )
