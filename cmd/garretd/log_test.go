package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// TestNewLogger: --log-level filters, --log-format json writes one JSON
// object per line, and a bad value of either is refused with the values
// that work.
func TestNewLogger(t *testing.T) {
	var b bytes.Buffer
	log, err := newLogger(&b, "warn", "json")
	if err != nil {
		t.Fatal(err)
	}
	log.Info("not shown")
	log.Warn("shown", "node", "eu-1")
	var line map[string]any
	if err := json.Unmarshal(b.Bytes(), &line); err != nil || line["msg"] != "shown" || line["level"] != "WARN" || line["node"] != "eu-1" {
		t.Fatalf("json log at warn: %q (%v)", b.String(), err)
	}
	b.Reset()
	if log, err = newLogger(&b, "DEBUG", "text"); err != nil {
		t.Fatal(err)
	}
	log.Debug("detail")
	if !strings.Contains(b.String(), "level=DEBUG msg=detail") {
		t.Fatalf("text log at debug: %q", b.String())
	}
	if _, err := newLogger(&b, "loud", "text"); err == nil || !strings.Contains(err.Error(), "debug, info, warn or error") {
		t.Fatalf("bad level: %v", err)
	}
	if _, err := newLogger(&b, "info", "yaml"); err == nil || !strings.Contains(err.Error(), "text or json") {
		t.Fatalf("bad format: %v", err)
	}
}
