// Package humantime parses durations the way Rust's humantime crate does, as
// Attic's config and atticadm's --validity use them: "1 hour", "10y",
// "3 months", "1h 30m". A month is 30.44 days and a year 365.25 days.
package humantime
