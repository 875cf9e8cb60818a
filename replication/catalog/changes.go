package catalog

import (
	"time"

	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/cockroachdb/pebble/v2"

	"github.com/garret-cache/garret/chunkstore"
	"github.com/garret-cache/garret/internal/nixid"
)

// The change log: every object put or removed, every file put and every
// cache destroyed leaves a record keyed by the log index of its entry and
// its position in it, in the same batch, so a follower of the catalog (the
// syncer) can resume from the last record it handled instead of rescanning.
// Records are part of the FSM state, so every replica has the same ones and
// snapshots carry them.

// Op is what a change did.
type Op string

// The changes recorded.
const (
	OpPutObject    Op = "put"     // an object was stored (or replaced)
	OpDeleteObject Op = "delete"  // an object was removed
	OpPutFile      Op = "file"    // an auxiliary file was stored
	OpDestroyCache Op = "destroy" // a cache and everything in it went
)

// Change is one record of the change log.
type Change struct {
	Cursor   Cursor                `json:"-"`
	Op       Op                    `json:"op"`
	Cache    nixid.CacheName       `json:"cache"`
	Hash     nixid.StorePathHash   `json:"hash,omitempty"`    // objects
	Name     string                `json:"name,omitempty"`    // files
	Manifest chunkstore.ManifestID `json:"manifest,omitzero"` // puts: the NAR's (or file's) chunks
	File     chunkstore.ManifestID `json:"file,omitzero"`     // puts: the upload as sent, when kept
	Size     int64                 `json:"size,omitempty"`    // puts: bytes stored (objects) or the file's size
	At       time.Time             `json:"at,omitzero"`       // puts: when the push was made (its CreatedAt)
}

// Cursor is a position in the change log: the log index of an entry and a
// change's position within it. A follower starts from ChangesHead after
// reading the whole catalog, never from the zero Cursor.
type Cursor struct {
	Index uint64
	Pos   uint32
}

// ChangeWindow is how many log indexes of changes are kept: when an entry's
// index is a multiple of 1024, records more than ChangeWindow indexes older
// are deleted (a rule of the index alone, so every replica trims alike).
const ChangeWindow = 1 << 17

// ErrCursorTooOld means changes after a cursor may be gone (trimmed, or
// from before the change log existed): the follower rescans the catalog and
// continues from the ChangesHead it took before the rescan.
var ErrCursorTooOld = errors.New("catalog: the change log no longer reaches back to that cursor")

var (
	changePrefix = []byte("x/")
	keyHorizon   = []byte("\x00changes-horizon") // index below which records were trimmed
)

func changeKey(c Cursor) []byte {
	k := make([]byte, 0, len(changePrefix)+12)
	k = append(k, changePrefix...)
	k = binary.BigEndian.AppendUint64(k, c.Index)
	return binary.BigEndian.AppendUint32(k, c.Pos)
}

func cursorOf(key []byte) (Cursor, bool) {
	if len(key) != len(changePrefix)+12 {
		return Cursor{}, false
	}
	k := key[len(changePrefix):]
	return Cursor{Index: binary.BigEndian.Uint64(k), Pos: binary.BigEndian.Uint32(k[8:])}, true
}

// record writes a change of the entry being applied.
func (b *applier) record(ch Change) {
	check(b.Set(changeKey(Cursor{Index: b.index, Pos: b.next}), mustJSON(ch), nil))
	b.next++
}

// startChanges gives a state its horizon on the first entry it applies
// with a change log: just after the last entry applied before (0 for a new
// state; for one upgraded from a version without the change log, its
// earlier changes were never recorded), so no cursor from before that can
// pass for complete.
func (b *applier) startChanges() {
	_, closer, err := b.Get(keyHorizon)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		check(b.Set(keyHorizon, binary.BigEndian.AppendUint64(nil, b.prev+1), nil))
	case err != nil:
		panic(stateError{err})
	default:
		_ = closer.Close()
	}
}

// trimChanges drops records older than ChangeWindow indexes, every 1024th
// index, and remembers the horizon.
func (b *applier) trimChanges() {
	if b.index%1024 != 0 || b.index <= ChangeWindow {
		return
	}
	horizon := b.index - ChangeWindow
	check(b.DeleteRange(changePrefix, changeKey(Cursor{Index: horizon}), nil))
	check(b.Set(keyHorizon, binary.BigEndian.AppendUint64(nil, horizon), nil))
}

// ChangesHorizon is the oldest index the change log covers whole: a cursor
// before it gets ErrCursorTooOld (0 while nothing was recorded yet).
func (c *Catalog) ChangesHorizon() (uint64, error) {
	c.fsm.st.mu.RLock()
	defer c.fsm.st.mu.RUnlock()
	return horizonOf(c.fsm.st.db)
}

func horizonOf(r pebble.Reader) (uint64, error) {
	v, closer, err := r.Get(keyHorizon)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	} else if err != nil {
		return 0, err
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, fmt.Errorf("catalog: bad change horizon")
	}
	return binary.BigEndian.Uint64(v), nil
}

// ChangesHead is a cursor after every change this node has applied: where
// a follower that has just read the whole catalog (a rescan after
// ErrCursorTooOld, or its first start) continues from.
func (c *Catalog) ChangesHead() Cursor {
	return Cursor{Index: c.fsm.applied.Load(), Pos: math.MaxUint32}
}

// Changes returns up to limit changes after cursor, in log order, and the
// cursor of the last one returned (cursor itself when there is none yet:
// wait with WaitChanges). ErrCursorTooOld when records after cursor may be
// gone (trimmed, or never recorded): the follower rescans the catalog from
// ChangesHead. The horizon and the records are read from one snapshot, so a
// trim committed meanwhile cannot hide records.
func (c *Catalog) Changes(after Cursor, limit int) ([]Change, Cursor, error) {
	c.fsm.st.mu.RLock()
	defer c.fsm.st.mu.RUnlock()
	db := c.fsm.st.db
	if db == nil {
		return nil, after, ErrClosed
	}
	snap := db.NewSnapshot()
	defer snap.Close()
	if h, err := horizonOf(snap); err != nil {
		return nil, after, err
	} else if h > 0 && !reaches(after, h) {
		return nil, after, fmt.Errorf("%w (cursor at index %d, log from %d)", ErrCursorTooOld, after.Index, h)
	}
	lower := append(changeKey(after), 0) // the first key after the cursor's
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(changePrefix)})
	if err != nil {
		return nil, after, err
	}
	defer it.Close()
	var out []Change
	last := after
	for it.First(); it.Valid() && len(out) < limit; it.Next() {
		cur, ok := cursorOf(it.Key())
		if !ok {
			continue
		}
		var ch Change
		if err := json.Unmarshal(it.Value(), &ch); err != nil {
			return nil, after, fmt.Errorf("catalog: change %d/%d: %w", cur.Index, cur.Pos, err)
		}
		ch.Cursor, last = cur, cur
		out = append(out, ch)
	}
	return out, last, it.Error()
}

// reaches reports whether every change after cursor is still recorded,
// given the horizon h (records at indexes below h are gone or were never
// written): the cursor is at h or later, or is the head of the entry just
// before it (ChangesHead taken when that entry was the last applied).
func reaches(after Cursor, h uint64) bool {
	return after.Index >= h || (after.Index+1 == h && after.Pos == math.MaxUint32)
}

// WaitChanges waits until Changes(after) has a change (or an error) to give.
func (c *Catalog) WaitChanges(ctx context.Context, after Cursor) error {
	for {
		advanced := c.fsm.advanced.wait()
		chs, _, err := c.Changes(after, 1)
		if err != nil || len(chs) > 0 {
			return err
		}
		select {
		case <-advanced:
		case <-c.stop:
			return ErrClosed
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
