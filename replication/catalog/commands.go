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
)

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
}

// logVersion prefixes every log entry's data.
const logVersion = 1

// encodeBatch serialises commands that apply in order as one log entry.
func encodeBatch(cmds []command) ([]byte, error) {
	b, err := json.Marshal(cmds)
	if err != nil {
		return nil, err
	}
	return append([]byte{logVersion}, b...), nil
}

func decodeBatch(data []byte) ([]command, error) {
	if len(data) == 0 || data[0] != logVersion {
		return nil, fmt.Errorf("catalog: unknown log entry version")
	}
	var cmds []command
	if err := json.Unmarshal(data[1:], &cmds); err != nil {
		return nil, fmt.Errorf("catalog: decode log entry: %w", err)
	}
	return cmds, nil
}

// result is what one command's apply produced.
type result struct {
	err   error
	count int
	index uint64 // the log entry that carried the command
}

// batchResult is the FSM's response to one log entry.
type batchResult struct{ results []result }
