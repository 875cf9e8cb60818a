package humantime

import (
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"1 hour": time.Hour, "12 hours": 12 * time.Hour, "1 day": 24 * time.Hour, "30 days": 30 * day,
		"1s": time.Second, "1h 30m": 90 * time.Minute, "0": 0, "2y": time.Duration(2 * 365.25 * float64(day)),
		"10y": time.Duration(10 * 365.25 * float64(day)), "99 years": time.Duration(99 * 365.25 * float64(day)),
		"3 months": 3 * time.Duration(30.44*float64(day)), "1 month": time.Duration(30.44 * float64(day)),
	} {
		got, err := Parse(in)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "hour", "1 fortnight", "-1h", "1.5h", "99999999999999y"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

func TestFormat(t *testing.T) {
	if got := Format(30*day + 12*time.Hour); got != "30days 12h" {
		t.Fatalf("Format = %q", got)
	}
}
