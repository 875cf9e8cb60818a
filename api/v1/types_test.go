package v1

import (
	"encoding/json"
	"testing"
)

func TestKeypairConfig_RoundTrip(t *testing.T) {
	for _, tc := range []struct {
		json string
		ok   bool
	}{
		{`"Generate"`, true},
		{`{"Keypair":"hello:AAAA"}`, true},
		{`"Nope"`, false},
		{`{"Other":"x"}`, false},
		{`42`, false},
	} {
		var k KeypairConfig
		err := json.Unmarshal([]byte(tc.json), &k)
		if (err == nil) != tc.ok {
			t.Fatalf("%s: err=%v want ok=%v", tc.json, err, tc.ok)
		}
		if err == nil {
			out, _ := json.Marshal(k)
			if string(out) != tc.json {
				t.Fatalf("round trip %s -> %s", tc.json, out)
			}
		}
	}
}

func TestRetentionPeriodConfig_RoundTrip(t *testing.T) {
	for _, tc := range []struct {
		json string
		ok   bool
	}{
		{`"Global"`, true},
		{`{"Period":3600}`, true},
		{`{"Period":0}`, true},
		{`"global"`, false},
		{`{"Days":1}`, false},
	} {
		var r RetentionPeriodConfig
		err := json.Unmarshal([]byte(tc.json), &r)
		if (err == nil) != tc.ok {
			t.Fatalf("%s: err=%v want ok=%v", tc.json, err, tc.ok)
		}
		if err == nil {
			out, _ := json.Marshal(r)
			if string(out) != tc.json {
				t.Fatalf("round trip %s -> %s", tc.json, out)
			}
		}
	}
}

func TestCacheConfig_OmitsNil(t *testing.T) {
	pub := true
	out, _ := json.Marshal(CacheConfig{IsPublic: &pub})
	if string(out) != `{"is_public":true}` {
		t.Fatalf("got %s", out)
	}
}
