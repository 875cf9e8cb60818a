package p2p

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/garret-cache/garret/chunkstore"
)

// ChunkProtocol serves manifests, frame sizes and frames to other nodes.
const ChunkProtocol protocol.ID = "/garret/chunks/2"

const (
	maxFrame       = 64 << 20 // caps a frame received from a peer
	maxIDs         = 4096     // chunk ids in one request (~270 KB of JSON)
	maxRequest     = 1 << 20
	ioStallTimeout = 30 * time.Second // a peer silent this long is given up on
)

// chunkRequest asks for one manifest, or for the sizes or frames of chunks.
type chunkRequest struct {
	Kind string   `json:"kind"` // "manifest", "manifest-sizes", "sizes" or "frames"
	ID   string   `json:"id,omitempty"`
	IDs  []string `json:"ids,omitempty"`
}

// Status bytes in replies, followed (when ok) by a u32 length and the bytes.
const (
	replyOK       = 0
	replyNotFound = 1
)

// ServeChunks answers other nodes' requests from the local store:
//   - manifest: status, u32 length, the manifest encoding;
//   - manifest-sizes: the same, then (when found) what sizes answers for
//     the manifest's chunks, in its order;
//   - sizes: status, then a u32 frame size per id (0: not here);
//   - frames: per id, in order: status, u32 length, the frame (CRC-checked).
func ServeChunks(h host.Host, store *chunkstore.Store, log *slog.Logger) {
	h.SetStreamHandler(ChunkProtocol, func(s network.Stream) {
		defer s.Close()
		_ = s.SetReadDeadline(time.Now().Add(ioStallTimeout))
		var req chunkRequest
		if err := json.NewDecoder(io.LimitReader(s, maxRequest)).Decode(&req); err != nil || len(req.IDs) > maxIDs {
			_ = s.Reset()
			return
		}
		w := bufio.NewWriterSize(deadlineWriter{s}, 64<<10)
		var err error
		switch req.Kind {
		case "manifest":
			_, err = serveManifest(w, store, req.ID)
		case "manifest-sizes":
			var m chunkstore.Manifest
			if m, err = serveManifest(w, store, req.ID); err == nil && len(m.Chunks) > 0 {
				err = serveSizes(w, store, manifestChunkIDs(m))
			}
		case "sizes":
			err = serveSizes(w, store, req.IDs)
		case "frames":
			err = serveFrames(w, store, req.IDs)
		default:
			err = errors.New("unknown request")
		}
		if err == nil {
			err = w.Flush()
		}
		if err != nil {
			log.Debug("chunk request failed", "kind", req.Kind, "peer", s.Conn().RemotePeer(), "err", err)
			_ = s.Reset()
		}
	})
}

// deadlineWriter gives every write to a stream its own stall timeout.
type deadlineWriter struct{ s network.Stream }

func (d deadlineWriter) Write(p []byte) (int, error) {
	_ = d.s.SetWriteDeadline(time.Now().Add(ioStallTimeout))
	return d.s.Write(p)
}

func writeBlob(w io.Writer, data []byte) error {
	var hdr [5]byte
	binary.LittleEndian.PutUint32(hdr[1:], uint32(len(data)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(data)
	return err
}

// serveManifest writes the manifest's reply and returns it (empty when not
// found here).
func serveManifest(w io.Writer, store *chunkstore.Store, hexID string) (chunkstore.Manifest, error) {
	id, err := chunkstore.ParseManifestID(hexID)
	if err != nil {
		return chunkstore.Manifest{}, err
	}
	m, err := store.Manifest(id)
	if errors.Is(err, chunkstore.ErrNotFound) {
		_, err = w.Write([]byte{replyNotFound})
		return chunkstore.Manifest{}, err
	} else if err != nil {
		return chunkstore.Manifest{}, err
	}
	data, err := m.MarshalBinary()
	if err != nil {
		return chunkstore.Manifest{}, err
	}
	return m, writeBlob(w, data)
}

// manifestChunkIDs are m's chunk ids in order, as hex.
func manifestChunkIDs(m chunkstore.Manifest) []string {
	out := make([]string, len(m.Chunks))
	for i, c := range m.Chunks {
		out[i] = c.ID.String()
	}
	return out
}

func serveSizes(w io.Writer, store *chunkstore.Store, ids []string) error {
	if _, err := w.Write([]byte{replyOK}); err != nil {
		return err
	}
	for _, h := range ids {
		id, err := chunkstore.ParseChunkID(h)
		if err != nil {
			return err
		}
		size, _, err := store.FrameSize(id)
		if err != nil {
			return err
		}
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], size)
		if _, err := w.Write(b[:]); err != nil {
			return err
		}
	}
	return nil
}

func serveFrames(w io.Writer, store *chunkstore.Store, ids []string) error {
	for _, h := range ids {
		id, err := chunkstore.ParseChunkID(h)
		if err != nil {
			return err
		}
		frame, err := store.Frame(id)
		if errors.Is(err, chunkstore.ErrNotFound) || errors.Is(err, chunkstore.ErrCorrupt) {
			if _, err := w.Write([]byte{replyNotFound}); err != nil {
				return err
			}
			continue
		} else if err != nil {
			return err
		}
		if err := writeBlob(w, frame); err != nil {
			return err
		}
	}
	return nil
}

// Fetcher gets what this node lacks from its peers.
type Fetcher struct {
	Host  host.Host
	Store *chunkstore.Store
	Peers func() []peer.ID // best first (same region, then lowest RTT)
	Log   *slog.Logger
	// Failures counts failed requests per peer (nil: not counted).
	Failures *PeerFailures
}

// Prefer returns a Fetcher that asks p before the others (a node that
// asked this one to copy what it holds).
func (f *Fetcher) Prefer(p peer.ID) *Fetcher {
	g := *f
	g.Peers = func() []peer.ID {
		out := []peer.ID{p}
		for _, q := range f.Peers() {
			if q != p {
				out = append(out, q)
			}
		}
		return out
	}
	return &g
}

// ErrUnavailable means no peer could provide what was asked.
var ErrUnavailable = errors.New("p2p: no peer has it")

// request opens a stream to p, sends req and waits for the first byte of
// the reply. A stream a resource limit refuses (here, or at p before its
// handler runs) is tried again for up to SlotWait.
func (f *Fetcher) request(ctx context.Context, p peer.ID, req chunkRequest) (network.Stream, *bufio.Reader, error) {
	start := time.Now()
	for try := 1; ; try++ {
		s, r, err := f.requestOnce(ctx, p, req)
		if err == nil {
			return s, r, nil
		}
		if !Refused(err) {
			if ctx.Err() == nil {
				f.Failures.add(p)
			}
			return nil, nil, err
		}
		if werr := waitSlot(ctx, start, try, err); werr != nil {
			return nil, nil, werr
		}
	}
}

func (f *Fetcher) requestOnce(ctx context.Context, p peer.ID, req chunkRequest) (network.Stream, *bufio.Reader, error) {
	s, err := f.Host.NewStream(ctx, p, ChunkProtocol)
	if err != nil {
		return nil, nil, err
	}
	_ = s.SetWriteDeadline(time.Now().Add(ioStallTimeout))
	if err := json.NewEncoder(s).Encode(req); err != nil {
		_ = s.Reset()
		return nil, nil, err
	}
	_ = s.CloseWrite()
	r := bufio.NewReaderSize(s, 64<<10)
	_ = s.SetReadDeadline(time.Now().Add(ioStallTimeout))
	if _, err := r.Peek(1); err != nil {
		_ = s.Reset()
		return nil, nil, err
	}
	return s, r, nil
}

// readBlob reads a status byte and, when ok, a length-prefixed blob.
func readBlob(s network.Stream, r *bufio.Reader) ([]byte, error) {
	_ = s.SetReadDeadline(time.Now().Add(ioStallTimeout))
	status, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	if status != replyOK {
		return nil, chunkstore.ErrNotFound
	}
	var l [4]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, err
	}
	n := binary.LittleEndian.Uint32(l[:])
	if n > maxFrame {
		return nil, fmt.Errorf("p2p: peer sent %d bytes", n)
	}
	data := make([]byte, n)
	_, err = io.ReadFull(r, data)
	return data, err
}

// FetchManifest makes a manifest local (verified against its id) unless it
// already is.
func (f *Fetcher) FetchManifest(ctx context.Context, id chunkstore.ManifestID) error {
	if _, err := f.Store.Manifest(id); !errors.Is(err, chunkstore.ErrNotFound) {
		return err
	}
	var last error
	for _, p := range f.Peers() {
		s, r, err := f.request(ctx, p, chunkRequest{Kind: "manifest", ID: id.String()})
		if err != nil {
			last = fmt.Errorf("%s: %w", p, err)
			continue
		}
		data, err := readBlob(s, r)
		_ = s.Close()
		if err != nil {
			last = fmt.Errorf("%s: %w", p, err)
			continue
		}
		var m chunkstore.Manifest
		if m.UnmarshalBinary(data) != nil || m.ID() != id {
			f.Log.Warn("peer sent a bad manifest", "peer", p, "manifest", id)
			f.Failures.add(p)
			continue
		}
		_, err = f.Store.PutManifest(m)
		return err
	}
	return fmt.Errorf("%w: manifest %s (last: %v)", ErrUnavailable, id, last)
}

// FetchManifestRemote makes manifest id local (verified against its id),
// asking peers nearest first, and returns a Remote over the chunks of it the
// peer that sent it holds, with their frame sizes from the same answer: the
// chunks can then be fetched from that peer with no round trip to ask
// (Remote asks for the others). ErrUnavailable if no peer has the manifest.
func (f *Fetcher) FetchManifestRemote(ctx context.Context, id chunkstore.ManifestID) (chunkstore.Remote, error) {
	var last error
	for _, p := range f.Peers() {
		s, r, err := f.request(ctx, p, chunkRequest{Kind: "manifest-sizes", ID: id.String()})
		if err != nil {
			last = fmt.Errorf("%s: %w", p, err)
			continue
		}
		m, sizes, err := readManifestSizes(s, r, id)
		_ = s.Close()
		if errors.Is(err, errBadManifest) {
			f.Log.Warn("peer sent a bad manifest", "peer", p, "manifest", id)
			f.Failures.add(p)
		}
		if err != nil {
			last = fmt.Errorf("%s: %w", p, err)
			continue
		}
		if _, err := f.Store.PutManifest(m); err != nil {
			return nil, err
		}
		return f.RemoteAt(p, sizes), nil
	}
	return nil, fmt.Errorf("%w: manifest %s (last: %v)", ErrUnavailable, id, last)
}

var errBadManifest = errors.New("p2p: manifest does not match its id")

// readManifestSizes reads a manifest-sizes reply: the manifest, then the
// frame size of each of its chunks (only those the peer holds are kept).
func readManifestSizes(s network.Stream, r *bufio.Reader, id chunkstore.ManifestID) (chunkstore.Manifest, map[chunkstore.ChunkID]uint32, error) {
	var m chunkstore.Manifest
	data, err := readBlob(s, r)
	if err != nil {
		return m, nil, err
	}
	if m.UnmarshalBinary(data) != nil || m.ID() != id {
		return m, nil, errBadManifest
	}
	sizes := make(map[chunkstore.ChunkID]uint32, len(m.Chunks))
	if len(m.Chunks) == 0 {
		return m, sizes, nil
	}
	_ = s.SetReadDeadline(time.Now().Add(ioStallTimeout))
	if status, err := r.ReadByte(); err != nil || status != replyOK {
		return m, nil, fmt.Errorf("p2p: manifest sizes: status %d %v", status, err)
	}
	var b [4]byte
	for _, c := range m.Chunks {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return m, nil, err
		}
		if n := binary.LittleEndian.Uint32(b[:]); n > 0 {
			sizes[c.ID] = n
		}
	}
	return m, sizes, nil
}

// Remote finds, for every chunk in ids, a peer that has it (nearest first)
// and the size of that peer's frame, so a NAR can be served from it with an
// exact length (chunkstore.OpenNARFrom). ErrUnavailable if some chunk is on
// no reachable peer.
func (f *Fetcher) Remote(ctx context.Context, ids []chunkstore.ChunkID) (chunkstore.Remote, error) {
	r := &remote{f: f, size: map[chunkstore.ChunkID]uint32{}, owner: map[chunkstore.ChunkID]peer.ID{}}
	left := ids
	for _, p := range f.Peers() {
		if len(left) == 0 {
			break
		}
		var still []chunkstore.ChunkID
		for start := 0; start < len(left); start += maxIDs {
			batch := left[start:min(start+maxIDs, len(left))]
			sizes, err := f.sizes(ctx, p, batch)
			if err != nil {
				f.Log.Debug("asking a peer for frame sizes failed", "peer", p, "err", err)
				still = append(still, left[start:]...)
				break
			}
			for i, id := range batch {
				if sizes[i] == 0 {
					still = append(still, id)
				} else {
					r.size[id], r.owner[id] = sizes[i], p
				}
			}
		}
		left = still
	}
	if len(left) > 0 {
		return nil, fmt.Errorf("%w: %d of %d chunks (first %s)", ErrUnavailable, len(left), len(ids), left[0])
	}
	return r, nil
}

func (f *Fetcher) sizes(ctx context.Context, p peer.ID, ids []chunkstore.ChunkID) ([]uint32, error) {
	s, r, err := f.request(ctx, p, chunkRequest{Kind: "sizes", IDs: hexIDs(ids)})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	_ = s.SetReadDeadline(time.Now().Add(ioStallTimeout))
	if status, err := r.ReadByte(); err != nil || status != replyOK {
		return nil, fmt.Errorf("p2p: sizes from %s: status %d %v", p, status, err)
	}
	out := make([]uint32, len(ids))
	var b [4]byte
	for i := range out {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, err
		}
		out[i] = binary.LittleEndian.Uint32(b[:])
	}
	return out, nil
}

func hexIDs(ids []chunkstore.ChunkID) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.String()
	}
	return out
}

// RemoteAt serves the chunks of sizes (their frame sizes) from peer p,
// which is known to hold them all (it asked this node to copy them), with
// no round trip to ask.
func (f *Fetcher) RemoteAt(p peer.ID, sizes map[chunkstore.ChunkID]uint32) chunkstore.Remote {
	r := &remote{f: f, size: sizes, owner: make(map[chunkstore.ChunkID]peer.ID, len(sizes))}
	for id := range sizes {
		r.owner[id] = p
	}
	return r
}

// remote serves frames from the peers Fetcher.Remote chose.
type remote struct {
	f     *Fetcher
	size  map[chunkstore.ChunkID]uint32
	owner map[chunkstore.ChunkID]peer.ID
}

func (r *remote) FrameSize(id chunkstore.ChunkID) (uint32, bool) {
	s, ok := r.size[id]
	return s, ok
}

// Frames streams the frames of ids: one "frames" request per owning peer
// (and per maxIDs chunks), read in the order of ids.
func (r *remote) Frames(ctx context.Context, ids []chunkstore.ChunkID) (chunkstore.FrameIter, error) {
	queues := map[peer.ID][]chunkstore.ChunkID{}
	for _, id := range ids {
		p, ok := r.owner[id]
		if !ok {
			return nil, fmt.Errorf("%w: chunk %s", ErrUnavailable, id)
		}
		queues[p] = append(queues[p], id)
	}
	return &frameIter{r: r, ctx: ctx, ids: ids, queues: queues, open: map[peer.ID]*frameStream{}}, nil
}

type frameStream struct {
	s    network.Stream
	rd   *bufio.Reader
	left int // frames still to read from this request
}

type frameIter struct {
	r      *remote
	ctx    context.Context
	ids    []chunkstore.ChunkID
	queues map[peer.ID][]chunkstore.ChunkID // ids not yet requested, per peer
	open   map[peer.ID]*frameStream
}

func (it *frameIter) Next() ([]byte, error) {
	if len(it.ids) == 0 {
		return nil, errors.New("p2p: no more frames")
	}
	id := it.ids[0]
	it.ids = it.ids[1:]
	p := it.r.owner[id]
	fs := it.open[p]
	if fs == nil || fs.left == 0 {
		if fs != nil {
			_ = fs.s.Close()
		}
		q := it.queues[p]
		n := min(len(q), maxIDs)
		s, rd, err := it.r.f.request(it.ctx, p, chunkRequest{Kind: "frames", IDs: hexIDs(q[:n])})
		if err != nil {
			return nil, fmt.Errorf("p2p: frames from %s: %w", p, err)
		}
		it.queues[p] = q[n:]
		fs = &frameStream{s: s, rd: rd, left: n}
		it.open[p] = fs
	}
	fs.left--
	frame, err := readBlob(fs.s, fs.rd)
	if err != nil {
		return nil, fmt.Errorf("p2p: chunk %s from %s: %w", id, p, err)
	}
	return frame, nil
}

func (it *frameIter) Close() error {
	for _, fs := range it.open {
		if fs.left > 0 {
			_ = fs.s.Reset()
		} else {
			_ = fs.s.Close()
		}
	}
	return nil
}
