package humantime

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// ErrInvalid wraps every parse failure.
var ErrInvalid = errors.New("humantime: invalid duration")

const day = 24 * time.Hour

var units = map[string]time.Duration{
	"ns": time.Nanosecond, "nsec": time.Nanosecond,
	"us": time.Microsecond, "usec": time.Microsecond,
	"ms": time.Millisecond, "msec": time.Millisecond,
	"s": time.Second, "sec": time.Second, "secs": time.Second, "second": time.Second, "seconds": time.Second,
	"m": time.Minute, "min": time.Minute, "mins": time.Minute, "minute": time.Minute, "minutes": time.Minute,
	"h": time.Hour, "hr": time.Hour, "hrs": time.Hour, "hour": time.Hour, "hours": time.Hour,
	"d": day, "day": day, "days": day,
	"w": 7 * day, "week": 7 * day, "weeks": 7 * day,
	"M": time.Duration(30.44 * float64(day)), "month": time.Duration(30.44 * float64(day)), "months": time.Duration(30.44 * float64(day)),
	"y": time.Duration(365.25 * float64(day)), "year": time.Duration(365.25 * float64(day)), "years": time.Duration(365.25 * float64(day)),
}

// Parse reads a sequence of "<number><unit>" terms, spaces optional; "0" alone is zero.
func Parse(s string) (time.Duration, error) {
	in := strings.TrimSpace(s)
	if in == "0" {
		return 0, nil
	}
	if in == "" {
		return 0, fmt.Errorf("%w: empty", ErrInvalid)
	}
	var total time.Duration
	rest := in
	for rest != "" {
		rest = strings.TrimLeft(rest, " ")
		i := strings.IndexFunc(rest, func(r rune) bool { return !unicode.IsDigit(r) })
		if i <= 0 {
			return 0, fmt.Errorf("%w: %q: expected a number", ErrInvalid, s)
		}
		n, err := strconv.ParseUint(rest[:i], 10, 63)
		if err != nil {
			return 0, fmt.Errorf("%w: %q: %v", ErrInvalid, s, err)
		}
		rest = strings.TrimLeft(rest[i:], " ")
		j := strings.IndexFunc(rest, func(r rune) bool { return !unicode.IsLetter(r) })
		if j < 0 {
			j = len(rest)
		}
		unit, ok := units[rest[:j]]
		if !ok {
			return 0, fmt.Errorf("%w: %q: unknown unit %q", ErrInvalid, s, rest[:j])
		}
		rest = rest[j:]
		if float64(n)*float64(unit) > math.MaxInt64-float64(total) {
			return 0, fmt.Errorf("%w: %q: too large", ErrInvalid, s)
		}
		total += time.Duration(n) * unit
	}
	return total, nil
}

// Format renders d compactly, e.g. "30days 12h", for display.
func Format(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	var parts []string
	for _, u := range []struct {
		name string
		d    time.Duration
	}{{"days", day}, {"h", time.Hour}, {"m", time.Minute}, {"s", time.Second}} {
		if n := d / u.d; n > 0 {
			parts = append(parts, fmt.Sprintf("%d%s", n, u.name))
			d -= n * u.d
		}
	}
	if len(parts) == 0 {
		return d.String()
	}
	return strings.Join(parts, " ")
}
