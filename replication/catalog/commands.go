package catalog

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/garret-cache/garret/internal/nixid"
)

// cmdType numbers are appended, never reused: they are in the Raft log.
type cmdType uint8

const (
	cmdCreateCache    cmdType = 1
	cmdConfigureCache cmdType = 2
	cmdDestroyCache   cmdType = 3
	cmdPutObject      cmdType = 4
	cmdDeleteObjects  cmdType = 5
	cmdPutFile        cmdType = 6
	cmdRevokeToken    cmdType = 7
	cmdSetClusterID   cmdType = 8
	// cmdRevokeTokens adds a revocation rule (by subject and/or cache
	// pattern, issued before a time). A node that predates it skips it
	// (wellFormed) and never learns the rule, even once upgraded (the entry
	// is behind its applied index; only a snapshot restore brings it): a
	// rule must be added once every node runs a version that knows it.
	cmdRevokeTokens cmdType = 9
)

// CommandVersion is the newest command set this build applies. Every node
// tells it to the others (gossip metadata), and the leader proposes a
// command only when every Raft server has at least the version that
// introduced its type (since), so no replica ever skips a command during a
// rolling upgrade because it does not know it yet. Raise it, and give the
// new type its since, with every new command type.
const CommandVersion = 2

// since is the CommandVersion that introduced t.
func (t cmdType) since() int {
	if t == cmdRevokeTokens {
		return 2
	}
	return 1
}

// command is the one envelope every write travels in.
type command struct {
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
	// Tombstone (cmdDestroyCache) keeps the destroyed cache's name from
	// being created again, deleted at DeletedAt; the proposer decides, so
	// every replica applies the same thing whatever its own config says.
	Tombstone bool      `json:"tombstone,omitempty"`
	DeletedAt time.Time `json:"deleted_at,omitzero"`
	// Rule is cmdRevokeTokens's revocation rule.
	Rule *RevocationRule `json:"rule,omitempty"`
}

// logVersion prefixes every log entry's data.
const logVersion = 1

// encodeBatch joins commands, already encoded by validate, into one log
// entry that applies them in order.
func encodeBatch(raws [][]byte) []byte {
	n := 3 + len(raws)
	for _, r := range raws {
		n += len(r)
	}
	b := make([]byte, 0, n)
	b = append(b, logVersion, '[')
	for i, r := range raws {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, r...)
	}
	return append(b, ']')
}

// entryLen is the length of the entry encodeBatch makes of commands whose
// encodings sum to n bytes.
func entryLen(commands, n int) int { return n + commands + 2 }

// decoded is one command of a log entry, or why it could not be decoded.
type decoded struct {
	cmd command
	err error
}

// decodeBatch splits a log entry into its commands. It fails only when the
// entry as a whole is not a version-1 JSON array; a command that does not
// decode is returned with its error, so the others still apply.
func decodeBatch(data []byte) ([]decoded, error) {
	if len(data) == 0 || data[0] != logVersion {
		return nil, fmt.Errorf("catalog: unknown log entry version (written by a newer Garret?)")
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(data[1:], &raws); err != nil {
		return nil, fmt.Errorf("catalog: decode log entry: %w", err)
	}
	out := make([]decoded, len(raws))
	for i, r := range raws {
		if err := json.Unmarshal(r, &out[i].cmd); err != nil {
			out[i].err = fmt.Errorf("%w: does not decode: %v", ErrInvalidCommand, err)
		}
	}
	return out, nil
}

// result is what one command's apply produced.
type result struct {
	err   error
	count int
	index uint64 // the log entry that carried the command
}

// batchResult is the FSM's response to one log entry.
type batchResult struct{ results []result }
