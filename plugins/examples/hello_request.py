"""Answers HTTP requests on /api/v3/engine/PATH with a greeting and the latest row of a table.

Trigger: request:PATH.  Try: curl 'http://127.0.0.1:8181/api/v3/engine/hello?name=you'
Arguments: `table` (optional) whose newest row is returned under "latest".
"""


def process_request(influxdb3_local, query_parameters, request_headers, request_body, args=None):
    name = query_parameters.get("name", "world")
    answer = {"hello": name, "method_body_bytes": len(request_body)}
    table = (args or {}).get("table")
    if table:
        rows = influxdb3_local.query(f'SELECT * FROM "{table}" ORDER BY time DESC LIMIT 1')
        answer["latest"] = rows[0] if rows else None
    # A dict becomes JSON; (body, status) and (status, headers, body) tuples work too.
    return answer
