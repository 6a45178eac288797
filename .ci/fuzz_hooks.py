"""schemathesis hooks for .ci/fuzz-api.sh: how to make values of the API's own string
formats, which no JSON Schema pattern can state exactly. `cron` is a 5-field (or 6, seconds
first) cron expression; `timezone` an IANA name. Invalid values are still sent: the other
generated strings of these fields come from their plain `string` type."""

from hypothesis import strategies as st

import schemathesis

minute = st.sampled_from(["*", "0", "5", "30", "59", "*/5", "0,30", "10-20", "0-59/15"])
hour = st.sampled_from(["*", "0", "3", "23", "*/2", "9-17", "6,18"])
day = st.sampled_from(["*", "1", "15", "31", "1-7", "*/3"])
month = st.sampled_from(["*", "1", "12", "1-6", "*/4", "JAN", "jan-mar"])
weekday = st.sampled_from(["*", "0", "6", "1-5", "MON", "mon-fri", "0,6"])
five = st.tuples(minute, hour, day, month, weekday).map(" ".join)
six = st.tuples(st.sampled_from(["0", "*/10", "30"]), five).map(" ".join)

schemathesis.openapi.format("cron", st.one_of(five, six))
schemathesis.openapi.format(
    "timezone",
    st.sampled_from(
        ["UTC", "Europe/Paris", "Europe/Berlin", "America/New_York", "Asia/Shanghai", "Asia/Kolkata", "Australia/Sydney"]
    ),
)


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@schemathesis.hook
def map_body(ctx, body):
    """The one rule between fields no JSON Schema can state: `retry_backoff_max_seconds`
    (default 600) is at least `retry_backoff_seconds` (default 10); it is documented in the
    field's description and tested in tests/tests/retries.rs. Bodies that break it get the
    two values swapped (or the maximum raised to the backoff), so generated bodies keep
    every value they had: a case made invalid on purpose stays invalid."""
    if not isinstance(body, dict):
        return body
    backoff, longest = body.get("retry_backoff_seconds"), body.get("retry_backoff_max_seconds")
    if _number(backoff) and _number(longest) and longest < backoff:
        body = {**body, "retry_backoff_seconds": longest, "retry_backoff_max_seconds": backoff}
    elif _number(backoff) and longest is None and backoff > 600:
        body = {**body, "retry_backoff_max_seconds": backoff}
    return body
