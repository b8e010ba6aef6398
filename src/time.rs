//! Times as the API shows them (RFC 3339, UTC, whole seconds) and back. Every timestamp the
//! operator writes or reads in status, annotations and messages goes through here.

/// Seconds since the epoch as RFC 3339 (UTC, whole seconds).
pub fn rfc3339(secs: i64) -> String {
    jiff::Timestamp::from_second(secs).map_or_else(|_| secs.to_string(), |t| t.to_string())
}

/// RFC 3339 back to seconds since the epoch (None when unreadable).
pub fn parse(text: &str) -> Option<i64> {
    text.parse::<jiff::Timestamp>().ok().map(|t| t.as_second())
}

/// Now, in seconds since the epoch (the controllers take theirs from an injected clock).
pub fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_garbage() {
        assert_eq!(rfc3339(1_800_000_000), "2027-01-15T08:00:00Z");
        assert_eq!(parse("2027-01-15T08:00:00Z"), Some(1_800_000_000));
        assert_eq!(parse(&rfc3339(12345)), Some(12345));
        assert_eq!(parse("yesterday"), None);
    }
}
