package catalog

import (
	"encoding/json"
	"fmt"
	"strconv"
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
	// pattern, issued before a time); since version 2, so the leader
	// proposes it only once every node knows it (see CommandVersion).
	cmdRevokeTokens cmdType = 9
	// cmdTouchObjects records downloads (retention's access times) and
	// cmdExpireObjects removes what retention found unused; since version 3.
	cmdTouchObjects  cmdType = 10
	cmdExpireObjects cmdType = 11
)

// CommandVersion is the newest command set this build applies. Every node
// tells it to the others (gossip metadata), and the leader proposes a
// command only when every Raft server has at least the version that
// introduced its type (spec.since), so no replica ever skips a command
// during a rolling upgrade because it does not know it yet. Raise it, and
// give the new type's spec its since, with every new command type.
//
// Version 4 adds no command: it is the first that reads snapshot format 2
// (snapshot.go), which a leader writes only once every server has it.
const CommandVersion = 4

// payload is one command type's content (payloads.go): its fields, its
// checks and its apply (apply.go).
type payload interface {
	kind() cmdType
	// wellFormed says why the payload cannot be applied at all (a part
	// missing, a name that does not parse); see command.wellFormed.
	wellFormed() error
	// bounded checks each field against its bound (limits.go).
	bounded(b *bounds)
	apply(b *applier) result
}

// spec is what this build knows of a command type.
type spec struct {
	name  string
	since int // the CommandVersion that introduced it
	new   func() payload
}

var specs = map[cmdType]spec{
	cmdCreateCache:    {"create-cache", 1, func() payload { return new(createCache) }},
	cmdConfigureCache: {"configure-cache", 1, func() payload { return new(configureCache) }},
	cmdDestroyCache:   {"destroy-cache", 1, func() payload { return new(destroyCache) }},
	cmdPutObject:      {"put-object", 1, func() payload { return new(putObject) }},
	cmdDeleteObjects:  {"delete-objects", 1, func() payload { return new(deleteObjects) }},
	cmdPutFile:        {"put-file", 1, func() payload { return new(putFile) }},
	cmdRevokeToken:    {"revoke-token", 1, func() payload { return new(revokeToken) }},
	cmdSetClusterID:   {"set-cluster-id", 1, func() payload { return new(setClusterID) }},
	cmdRevokeTokens:   {"revoke-tokens", 2, func() payload { return new(revokeTokens) }},
	cmdTouchObjects:   {"touch-objects", 3, func() payload { return new(touchObjects) }},
	cmdExpireObjects:  {"expire-objects", 3, func() payload { return new(expireObjects) }},
}

// since is the CommandVersion that introduced t (one past this build's for
// a type it does not know).
func (t cmdType) since() int {
	if s, ok := specs[t]; ok {
		return s.since
	}
	return CommandVersion + 1
}

func (t cmdType) String() string {
	if s, ok := specs[t]; ok {
		return s.name
	}
	return fmt.Sprintf("unknown command type %d", uint8(t))
}

// command is the envelope every write travels in: {"t": type} and the
// payload's own keys, flat, as the log has always had them.
type command struct {
	Type cmdType
	p    payload // nil for a type this build does not know
}

// cmdOf wraps a payload in its envelope.
func cmdOf(p payload) command { return command{Type: p.kind(), p: p} }

// MarshalJSON writes "t" first, then the payload's keys.
func (c command) MarshalJSON() ([]byte, error) {
	out := strconv.AppendUint([]byte(`{"t":`), uint64(c.Type), 10)
	if c.p == nil {
		return append(out, '}'), nil
	}
	body, err := json.Marshal(c.p)
	if err != nil {
		return nil, err
	}
	if len(body) <= 2 { // "{}"
		return append(out, '}'), nil
	}
	return append(append(out, ','), body[1:]...), nil
}

// UnmarshalJSON reads "t", then the payload of that type; a type this build
// does not know leaves the payload nil (wellFormed says so), and keys of
// other types are ignored.
func (c *command) UnmarshalJSON(data []byte) error {
	var env struct {
		Type cmdType `json:"t"`
	}
	if err := json.Unmarshal(data, &env); err != nil {
		return err
	}
	c.Type, c.p = env.Type, nil
	s, ok := specs[env.Type]
	if !ok {
		return nil
	}
	p := s.new()
	if err := json.Unmarshal(data, p); err != nil {
		return err
	}
	c.p = p
	return nil
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
		// r is one valid JSON value: UnmarshalJSON directly, as json.Unmarshal
		// would after scanning it twice more (FuzzForwardedCommand compares).
		if err := out[i].cmd.UnmarshalJSON(r); err != nil {
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
