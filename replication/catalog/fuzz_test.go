package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/garret-cache/garret/internal/nixid"
)

// FuzzForwardedCommand drives bytes as the leader receives them on the
// forward protocol through decode, validation and apply on a fresh FSM
// (holding a cache "a"): nothing panics, a command that passed validation
// applies (its only possible failures are domain errors), and the same bytes
// taken as a raw log entry are applied or skipped, never a panic.
func FuzzForwardedCommand(f *testing.F) {
	o := object("a", 7)
	o.Sigs, o.System, o.CA, o.Deriver = []string{"k-1:c2ln"}, "x86_64-linux", "fixed:r:sha256:0", "x.drv"
	o.Upload = &UploadedNAR{URL: "nar/x.nar.xz", Compression: "xz"}
	pub := true
	for _, c := range []command{
		cmdOf(&createCache{Cache: &Cache{Name: "b", StoreDir: "/nix/store"}}),
		cmdOf(&configureCache{Name: "a", Patch: &CachePatch{IsPublic: &pub}}),
		cmdOf(&destroyCache{Name: "a", Tombstone: true, DeletedAt: time.Unix(1, 0).UTC()}),
		cmdOf(&putObject{Object: &o}),
		cmdOf(&deleteObjects{Name: "a", Hashes: []nixid.StorePathHash{hashOf(7)}}),
		cmdOf(&putFile{File: &File{Cache: "a", Name: "log/x"}}),
		cmdOf(&revokeToken{JTI: "j", ExpiresAt: time.Unix(9, 0).UTC()}),
		cmdOf(&setClusterID{ClusterID: "c"}),
		cmdOf(&revokeTokens{Rule: &RevocationRule{Subject: "s", CachePattern: "a*", IssuedBefore: time.Unix(9, 0).UTC()}}),
	} {
		b, _ := json.Marshal(c)
		f.Add(b)
	}
	for _, s := range []string{`{"t":4}`, `{"t":99}`, `{"t":1,"cache":null}`, `{"t":5,"name":"a","hashes":[""]}`, `[]`, `null`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fsm := memFSM(t)
		if r := applyEntry(fsm, []byte("\x01"+`[{"t":1,"cache":{"name":"a"}}]`)); len(r) != 1 || r[0].err != nil {
			t.Fatalf("setup: %+v", r)
		}
		cmd, err := readForwarded(bytes.NewReader(data))
		if err == nil {
			var raw []byte
			if raw, err = cmd.validate(); err == nil {
				if want, _ := json.Marshal(cmd); !bytes.Equal(raw, want) {
					t.Fatalf("validate encoded %s; json.Marshal gives %s", raw, want)
				}
				before := fsm.applied.Load()
				r := applyEntry(fsm, encodeBatch([][]byte{raw}))
				if len(r) != 1 || fsm.applied.Load() != before+1 {
					t.Fatalf("valid command %s not applied: %+v", raw, r)
				}
				if e := r[0].err; e != nil && !errors.Is(e, ErrNoSuchCache) && !errors.Is(e, ErrCacheExists) {
					t.Fatalf("valid command %s failed to apply: %v", raw, e)
				}
			}
		}
		if err != nil && !errors.Is(err, ErrInvalidCommand) {
			t.Fatalf("refused without ErrInvalidCommand: %v", err)
		}
		checkDecodeBatch(t, append([]byte{logVersion}, data...))
		before := fsm.applied.Load()
		applyEntry(fsm, append([]byte{logVersion}, data...))
		applyEntry(fsm, data)
		if fsm.applied.Load() != before+2 {
			t.Fatalf("raw entries did not advance the applied index")
		}
	})
}

// checkDecodeBatch: decodeBatch decodes each command as json.Unmarshal into
// a command would (it calls UnmarshalJSON directly).
func checkDecodeBatch(t *testing.T, entry []byte) {
	t.Helper()
	got, err := decodeBatch(entry)
	var raws []json.RawMessage
	if werr := json.Unmarshal(entry[1:], &raws); (err == nil) != (werr == nil) {
		t.Fatalf("decodeBatch error %v; the array's %v", err, werr)
	}
	if err != nil {
		return
	}
	for i, r := range raws {
		var want command
		werr := json.Unmarshal(r, &want)
		if (got[i].err == nil) != (werr == nil) {
			t.Fatalf("command %d (%s): decodeBatch error %v; json.Unmarshal's %v", i, r, got[i].err, werr)
		}
		if werr == nil {
			g, _ := json.Marshal(got[i].cmd)
			w, _ := json.Marshal(want)
			if got[i].cmd.Type != want.Type || !bytes.Equal(g, w) {
				t.Fatalf("command %d (%s): decodeBatch gives %s; json.Unmarshal %s", i, r, g, w)
			}
		}
	}
}
