package dialurl

import (
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	for u, want := range map[string]string{
		"https://us-1.example":            "",
		"http://us-1.example:8080/cache/": "",
		"http://[2001:db8::1]:8080/":      "",
		"http://127.0.0.1:8080/":          "",
		"us-1.example":                    "not an http(s) URL",
		"ftp://us-1.example":              "not an http(s) URL",
		"http://":                         "not an http(s) URL",
		"http://0.0.0.0:8080":             "0.0.0.0 is no address",
		"http://[::]:8080/":               ":: is no address",
		"https://us-1.example/?x=1":       "query or fragment",
		"https://us-1.example/?":          "query or fragment",
		"https://us-1.example/#x":         "query or fragment",
		"http://us 1.example/":            "invalid character",
		"http://us-1.example/\nx = y":     "invalid control character",
	} {
		err := Check(u)
		if (want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), want) {
			t.Errorf("Check(%q) = %v, want %q", u, err, want)
		}
	}
}
