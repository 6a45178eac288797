//! Cron expressions in an IANA timezone: parsing with errors that name the field, and the
//! fire times after an instant.
//!
//! Syntax: 5 fields (`minute hour day-of-month month day-of-week`) or 6 with seconds first;
//! ranges, steps, lists and names (`MON-FRI`, `JAN`). Day-of-month and day-of-week both
//! restricted means either matches (Vixie cron). Times are wall-clock times in the
//! schedule's timezone, and DST is handled the way cron users expect (croner implements
//! it; the tests below pin it down): a wall time that does not exist that day (spring
//! forward) fires once, at the first valid instant after the gap; a wall time that exists
//! twice (fall back) fires once, at its first occurrence. Interval patterns (`*/15 * * *
//! *`) keep firing through both halves of a repeated hour, as in Vixie cron.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// Why an expression or timezone was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    /// The expression does not parse.
    #[error(
        "invalid cron expression '{expr}': {reason} (give 5 fields 'min hour dom month dow', or 6 with seconds first)"
    )]
    Expression {
        /// The expression as given.
        expr: String,
        /// What is wrong.
        reason: String,
    },
    /// Not an IANA timezone name.
    #[error(
        "unknown timezone '{0}': give an IANA name such as UTC, Europe/Berlin, America/New_York or Asia/Shanghai"
    )]
    Timezone(String),
}

impl CronError {
    /// The request field at fault (`cron` or `timezone`).
    pub fn field(&self) -> &'static str {
        match self {
            CronError::Expression { .. } => "cron",
            CronError::Timezone(_) => "timezone",
        }
    }
}

/// A parsed cron expression bound to a timezone.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    cron: Cron,
    tz: Tz,
}

/// Parses an IANA timezone name.
pub fn parse_timezone(name: &str) -> Result<Tz, CronError> {
    name.parse::<Tz>()
        .map_err(|_| CronError::Timezone(name.to_string()))
}

impl CronSchedule {
    /// Parses `expr` for timezone `timezone`.
    pub fn parse(expr: &str, timezone: &str) -> Result<Self, CronError> {
        let tz = parse_timezone(timezone)?;
        let invalid = |reason: String| CronError::Expression {
            expr: expr.to_string(),
            reason,
        };
        let fields = expr.split_whitespace().count();
        if !(5..=6).contains(&fields) {
            return Err(invalid(format!("it has {fields} fields")));
        }
        if expr.starts_with('@') {
            return Err(invalid("nicknames such as @daily are not supported".into()));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build()
            .parse(expr)
            .map_err(|e| invalid(e.to_string()))?;
        // A pattern that can never match (Feb 30) would make every search walk for a year.
        let probe = Utc::now().with_timezone(&tz);
        if cron.find_next_occurrence(&probe, false).is_err() {
            return Err(invalid("it never matches a real date".into()));
        }
        Ok(CronSchedule { cron, tz })
    }

    /// The timezone.
    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// The first fire time strictly after `after`, or None if there is none (a pattern
    /// whose dates ran out).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Fire times are whole seconds: searching strictly after the truncated second is
        // strictly after `after` too.
        self.cron
            .find_next_occurrence(&whole_second(after).with_timezone(&self.tz), false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The first fire time at or after `at`.
    pub fn next_from(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if whole_second(at) != at {
            return self.next_after(at);
        }
        self.cron
            .find_next_occurrence(&at.with_timezone(&self.tz), true)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The last fire time at or before `at`.
    pub fn prev_at_or_before(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_previous_occurrence(&whole_second(at).with_timezone(&self.tz), true)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The fire times due in `[from, until]` that a scheduler coming back should run:
    /// only the latest without catch-up; with catch-up all of them, oldest first, but at
    /// most `limit` (the latest ones). The flag says the limit cut older ones.
    pub fn due_between(
        &self,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
        catchup: bool,
        limit: usize,
    ) -> (Vec<DateTime<Utc>>, bool) {
        if until < from {
            return (Vec::new(), false);
        }
        let wanted = if catchup { limit.max(1) } else { 1 };
        let mut due = Vec::new();
        let mut cursor = until;
        let mut cut = false;
        while let Some(t) = self.prev_at_or_before(cursor) {
            if t < from {
                break;
            }
            if due.len() == wanted {
                cut = catchup;
                break;
            }
            due.push(t);
            cursor = t - chrono::Duration::seconds(1);
        }
        due.reverse();
        (due, cut)
    }

    /// Up to `count` fire times strictly after `after`, in the schedule's timezone.
    pub fn upcoming(&self, after: DateTime<Utc>, count: usize) -> Vec<DateTime<Tz>> {
        let mut out = Vec::with_capacity(count);
        let mut cursor = after;
        while out.len() < count {
            let Some(next) = self.next_after(cursor) else {
                break;
            };
            out.push(next.with_timezone(&self.tz));
            cursor = next;
        }
        out
    }
}

fn whole_second(t: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::Timelike;
    t.with_nanosecond(0).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn next(expr: &str, tz: &str, after: &str, n: usize) -> Vec<String> {
        CronSchedule::parse(expr, tz)
            .unwrap()
            .upcoming(utc(after), n)
            .iter()
            .map(|t| t.to_rfc3339())
            .collect()
    }

    /// (expression, timezone, after, expected next fire times as RFC 3339 in that zone)
    const TABLE: &[(&str, &str, &str, &[&str])] = &[
        // Plain daily time in a zone without DST.
        (
            "5 2 * * *",
            "Asia/Shanghai",
            "2026-03-01T00:00:00Z",
            &["2026-03-02T02:05:00+08:00", "2026-03-03T02:05:00+08:00"],
        ),
        // New York spring forward (2026-03-08, 02:00 → 03:00): 02:30 does not exist that
        // day and fires once at the first instant after the gap.
        (
            "30 2 * * *",
            "America/New_York",
            "2026-03-07T12:00:00Z",
            &["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"],
        ),
        // New York fall back (2026-11-01, 02:00 → 01:00): 01:30 exists twice, fires once.
        (
            "30 1 * * *",
            "America/New_York",
            "2026-10-31T12:00:00Z",
            &["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"],
        ),
        // Berlin spring forward (2026-03-29, 02:00 → 03:00).
        (
            "15 2 * * *",
            "Europe/Berlin",
            "2026-03-28T12:00:00Z",
            &["2026-03-29T03:00:00+02:00", "2026-03-30T02:15:00+02:00"],
        ),
        // Berlin fall back (2026-10-25, 03:00 → 02:00): 02:30 exists twice, fires once.
        (
            "30 2 * * *",
            "Europe/Berlin",
            "2026-10-24T12:00:00Z",
            &["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"],
        ),
        // Hourly through the Berlin fall-back night: the repeated hour fires in both halves.
        (
            "0 * * * *",
            "Europe/Berlin",
            "2026-10-24T22:30:00Z",
            &[
                "2026-10-25T01:00:00+02:00",
                "2026-10-25T02:00:00+02:00",
                "2026-10-25T02:00:00+01:00",
                "2026-10-25T03:00:00+01:00",
            ],
        ),
        // Month ends: the 31st skips short months.
        (
            "0 0 31 * *",
            "UTC",
            "2026-01-31T00:00:00Z",
            &[
                "2026-03-31T00:00:00+00:00",
                "2026-05-31T00:00:00+00:00",
                "2026-07-31T00:00:00+00:00",
            ],
        ),
        // Feb 29 only in leap years.
        (
            "0 12 29 2 *",
            "UTC",
            "2026-01-01T00:00:00Z",
            &["2028-02-29T12:00:00+00:00", "2032-02-29T12:00:00+00:00"],
        ),
        // Names, ranges: weekdays at 09:00 (2026-11-20 is a Friday).
        (
            "0 9 * * MON-FRI",
            "UTC",
            "2026-11-20T10:00:00Z",
            &["2026-11-23T09:00:00+00:00", "2026-11-24T09:00:00+00:00"],
        ),
        // Month names and lists.
        (
            "0 0 1 JAN,JUL *",
            "UTC",
            "2026-02-01T00:00:00Z",
            &["2026-07-01T00:00:00+00:00", "2027-01-01T00:00:00+00:00"],
        ),
        // Steps in a range, lists of hours.
        (
            "10-30/10 8,17 * * *",
            "UTC",
            "2026-05-05T08:15:00Z",
            &[
                "2026-05-05T08:20:00+00:00",
                "2026-05-05T08:30:00+00:00",
                "2026-05-05T17:10:00+00:00",
            ],
        ),
        // Day-of-month and day-of-week both restricted: either matches (Vixie cron).
        // 2026-06-01 is a Monday; the 13th a Saturday.
        (
            "0 0 13 * MON",
            "UTC",
            "2026-06-01T00:00:00Z",
            &[
                "2026-06-08T00:00:00+00:00",
                "2026-06-13T00:00:00+00:00",
                "2026-06-15T00:00:00+00:00",
            ],
        ),
        // Six fields: seconds first.
        (
            "*/20 * * * * *",
            "UTC",
            "2026-05-05T08:15:00Z",
            &[
                "2026-05-05T08:15:20+00:00",
                "2026-05-05T08:15:40+00:00",
                "2026-05-05T08:16:00+00:00",
            ],
        ),
        // Sunday as 0 and as 7.
        (
            "0 6 * * 0",
            "UTC",
            "2026-11-20T00:00:00Z",
            &["2026-11-22T06:00:00+00:00"],
        ),
        (
            "0 6 * * 7",
            "UTC",
            "2026-11-20T00:00:00Z",
            &["2026-11-22T06:00:00+00:00"],
        ),
    ];

    #[test]
    fn fire_times_match_the_table() {
        for (expr, tz, after, expected) in TABLE {
            let got = next(expr, tz, after, expected.len());
            assert_eq!(
                got,
                expected.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                "{expr} in {tz} after {after}"
            );
        }
    }

    #[test]
    fn bad_expressions_and_zones_name_their_field() {
        for bad in [
            "",
            "* * * *",
            "61 * * * *",
            "* 24 * * *",
            "* * 32 * *",
            "* * * 13 *",
            "* * * * FOO",
            "0 0 30 2 *",
            "* * * * * * 2026",
            "@daily",
            "a b c d e",
        ] {
            let err = CronSchedule::parse(bad, "UTC").expect_err(bad);
            assert_eq!(err.field(), "cron", "{bad}: {err}");
        }
        let err = CronSchedule::parse("* * * * *", "Mars/Olympus").unwrap_err();
        assert_eq!(err.field(), "timezone");
        assert!(err.to_string().contains("Mars/Olympus"));
    }

    #[test]
    fn due_between_picks_the_latest_or_all_up_to_the_limit() {
        let s = CronSchedule::parse("0 * * * *", "UTC").unwrap();
        let from = utc("2026-01-01T01:00:00Z");
        let until = utc("2026-01-01T05:30:00Z");
        let (latest, cut) = s.due_between(from, until, false, 100);
        assert_eq!((latest, cut), (vec![utc("2026-01-01T05:00:00Z")], false));
        let (all, cut) = s.due_between(from, until, true, 100);
        assert_eq!(all.len(), 5);
        assert_eq!(all[0], from, "oldest first");
        assert!(!cut);
        let (capped, cut) = s.due_between(from, until, true, 2);
        assert_eq!(
            capped,
            vec![utc("2026-01-01T04:00:00Z"), utc("2026-01-01T05:00:00Z")]
        );
        assert!(cut);
        let (none, _) = s.due_between(utc("2026-01-01T06:00:00Z"), until, true, 2);
        assert!(none.is_empty());
        // Sub-second instants: a fire at 05:00:00 is due at 05:00:00.300.
        let (due, _) = s.due_between(
            utc("2026-01-01T05:00:00Z"),
            utc("2026-01-01T05:00:00.300Z"),
            false,
            1,
        );
        assert_eq!(due, vec![utc("2026-01-01T05:00:00Z")]);
        assert_eq!(
            s.next_after(utc("2026-01-01T05:00:00.300Z")),
            Some(utc("2026-01-01T06:00:00Z"))
        );
    }

    #[test]
    fn next_from_includes_the_instant_itself() {
        let s = CronSchedule::parse("0 * * * *", "UTC").unwrap();
        let at = utc("2026-01-01T05:00:00Z");
        assert_eq!(s.next_from(at), Some(at));
        assert_eq!(s.next_after(at), Some(utc("2026-01-01T06:00:00Z")));
    }
}
