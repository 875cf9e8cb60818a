package catalog

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/raft"
)

// fsm applies log entries to the pebble state.
type fsm struct {
	st      *state
	log     *slog.Logger
	applied atomic.Uint64
	// applyHook, if set (tests), runs once per applied entry.
	applyHook func(index uint64)
}

var _ raft.FSM = (*fsm)(nil)

// Apply decodes one entry and applies its commands in order, atomically with
// the new applied index. Entries at or below the stored index are skipped.
//
// An entry or a command this node cannot apply — written by a newer node
// during a rolling upgrade, or malformed — is logged and skipped, and the
// applied index still advances: the decision depends only on the entry's
// bytes, so every replica, and this one replaying its log after a restart,
// skips the same commands and the states stay equal.
func (f *fsm) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	if l.Index <= f.applied.Load() {
		return nil
	}
	cmds, err := decodeBatch(l.Data)
	if err != nil {
		f.log.Error("skipping a log entry this node cannot decode; upgrade it to the cluster's newest version", "index", l.Index, "err", err)
	}
	f.st.mu.RLock()
	defer f.st.mu.RUnlock()
	b := f.st.db.NewIndexedBatch()
	defer b.Close()
	res := &batchResult{results: make([]result, len(cmds))}
	for i, d := range cmds {
		err := d.err
		if err == nil {
			err = d.cmd.wellFormed()
		}
		if err != nil {
			f.log.Error("skipping a command this node cannot apply", "index", l.Index, "command", i, "err", err)
			res.results[i] = result{err: err}
			continue
		}
		res.results[i] = applyCommand(b, d.cmd)
	}
	var idx [8]byte
	binary.LittleEndian.PutUint64(idx[:], l.Index)
	if err := b.Set(keyApplied, idx[:], nil); err != nil {
		panic(fmt.Sprintf("catalog: apply %d: %v", l.Index, err))
	}
	if err := b.Commit(pebble.Sync); err != nil {
		panic(fmt.Sprintf("catalog: commit %d: %v", l.Index, err))
	}
	f.applied.Store(l.Index)
	if f.applyHook != nil {
		f.applyHook(l.Index)
	}
	return res
}

// Snapshot captures a pebble snapshot; Persist streams it.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.st.mu.RLock()
	defer f.st.mu.RUnlock()
	return &snapshot{snap: f.st.db.NewSnapshot()}, nil
}

// Restore builds a fresh state from a snapshot and swaps it in.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	idx, err := f.st.restore(rc)
	if err != nil {
		return err
	}
	f.applied.Store(idx)
	f.log.Info("catalog restored from snapshot", "applied_index", idx)
	return nil
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
