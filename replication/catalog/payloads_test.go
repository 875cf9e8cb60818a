package catalog

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/garret-cache/garret/internal/nixid"
)

// legacyCommand is the one union struct every command was before per-type
// payloads, with its JSON tags: the Raft logs and snapshots of existing
// clusters hold commands in this shape.
type legacyCommand struct {
	Type      cmdType               `json:"t"`
	Cache     *Cache                `json:"cache,omitempty"`
	Name      nixid.CacheName       `json:"name,omitempty"`
	Patch     *CachePatch           `json:"patch,omitempty"`
	Object    *Object               `json:"object,omitempty"`
	Hashes    []nixid.StorePathHash `json:"hashes,omitempty"`
	File      *File                 `json:"file,omitempty"`
	JTI       string                `json:"jti,omitempty"`
	ClusterID string                `json:"cluster_id,omitempty"`
	ExpiresAt time.Time             `json:"expires_at,omitempty"`
	Tombstone bool                  `json:"tombstone,omitempty"`
	DeletedAt time.Time             `json:"deleted_at,omitzero"`
	Rule      *RevocationRule       `json:"rule,omitempty"`
}

// TestPayloads_SameLogFormat: what the union struct wrote decodes into the
// per-type payloads with the same values, and what the payloads write
// decodes into the union struct (an older node) with the same values.
func TestPayloads_SameLogFormat(t *testing.T) {
	o := object("a", 7)
	o.Upload = &UploadedNAR{URL: "nar/x.nar.xz", Compression: "xz"}
	pub := true
	at := time.Unix(1700000000, 0).UTC()
	rule := &RevocationRule{Subject: "s", CachePattern: "a*", IssuedBefore: at}
	for _, tc := range []struct {
		legacy legacyCommand
		now    command
	}{
		{legacyCommand{Type: cmdCreateCache, Cache: &Cache{Name: "b", StoreDir: "/nix/store", Priority: 41}}, cmdOf(&createCache{Cache: &Cache{Name: "b", StoreDir: "/nix/store", Priority: 41}})},
		{legacyCommand{Type: cmdConfigureCache, Name: "a", Patch: &CachePatch{IsPublic: &pub}}, cmdOf(&configureCache{Name: "a", Patch: &CachePatch{IsPublic: &pub}})},
		{legacyCommand{Type: cmdDestroyCache, Name: "a", Tombstone: true, DeletedAt: at}, cmdOf(&destroyCache{Name: "a", Tombstone: true, DeletedAt: at})},
		{legacyCommand{Type: cmdPutObject, Object: &o}, cmdOf(&putObject{Object: &o})},
		{legacyCommand{Type: cmdDeleteObjects, Name: "a", Hashes: []nixid.StorePathHash{hashOf(7)}}, cmdOf(&deleteObjects{Name: "a", Hashes: []nixid.StorePathHash{hashOf(7)}})},
		{legacyCommand{Type: cmdPutFile, File: &File{Cache: "a", Name: "log/x", Size: 3}}, cmdOf(&putFile{File: &File{Cache: "a", Name: "log/x", Size: 3}})},
		{legacyCommand{Type: cmdRevokeToken, JTI: "j", ExpiresAt: at}, cmdOf(&revokeToken{JTI: "j", ExpiresAt: at})},
		{legacyCommand{Type: cmdSetClusterID, ClusterID: "c"}, cmdOf(&setClusterID{ClusterID: "c"})},
		{legacyCommand{Type: cmdRevokeTokens, Rule: rule}, cmdOf(&revokeTokens{Rule: rule})},
	} {
		old, err := json.Marshal(tc.legacy)
		if err != nil {
			t.Fatal(err)
		}
		var got command
		if err := json.Unmarshal(old, &got); err != nil || got.wellFormed() != nil {
			t.Fatalf("%v: the old encoding %s does not decode: %v %v", tc.legacy.Type, old, err, got.wellFormed())
		}
		if !reflect.DeepEqual(got, tc.now) {
			t.Errorf("%v: decoded %+v, want %+v", tc.legacy.Type, got.p, tc.now.p)
		}
		now, err := json.Marshal(tc.now)
		if err != nil {
			t.Fatal(err)
		}
		var back legacyCommand
		if err := json.Unmarshal(now, &back); err != nil || !reflect.DeepEqual(back, tc.legacy) {
			t.Errorf("%v: an older node reads %s as %+v, want %+v (%v)", tc.legacy.Type, now, back, tc.legacy, err)
		}
	}
	var unknown command
	if err := json.Unmarshal([]byte(`{"t":200,"future":{"x":1}}`), &unknown); err != nil || unknown.Type != 200 || unknown.wellFormed() == nil {
		t.Fatalf("a newer type: %+v %v", unknown, err)
	}
}
