package p2p

import (
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

// ChunkProtocol serves manifests and chunk frames to other nodes.
const ChunkProtocol protocol.ID = "/garret/chunks/1"

// maxFrame caps a frame received from a peer.
const maxFrame = 64 << 20

// chunkRequest asks for one manifest or one frame.
type chunkRequest struct {
	Kind string `json:"kind"` // "manifest" or "frame"
	ID   string `json:"id"`   // hex
}

// Status bytes of a reply, followed (when ok) by a u32 length and the bytes.
const (
	replyOK       = 0
	replyNotFound = 1
)

// ServeChunks answers other nodes' requests from the local store.
func ServeChunks(h host.Host, store *chunkstore.Store, log *slog.Logger) {
	h.SetStreamHandler(ChunkProtocol, func(s network.Stream) {
		defer s.Close()
		_ = s.SetDeadline(time.Now().Add(time.Minute))
		var req chunkRequest
		if err := json.NewDecoder(io.LimitReader(s, 4096)).Decode(&req); err != nil {
			_ = s.Reset()
			return
		}
		var data []byte
		var err error
		switch req.Kind {
		case "manifest":
			var id chunkstore.ManifestID
			if id, err = chunkstore.ParseManifestID(req.ID); err == nil {
				var m chunkstore.Manifest
				if m, err = store.Manifest(id); err == nil {
					data, err = m.MarshalBinary()
				}
			}
		case "frame":
			var id chunkstore.ChunkID
			if id, err = chunkstore.ParseChunkID(req.ID); err == nil {
				data, err = store.Frame(id)
			}
		default:
			err = errors.New("unknown request")
		}
		if err != nil {
			_, _ = s.Write([]byte{replyNotFound})
			return
		}
		hdr := make([]byte, 5)
		binary.LittleEndian.PutUint32(hdr[1:], uint32(len(data)))
		if _, err := s.Write(append(hdr, data...)); err != nil {
			log.Debug("chunk reply failed", "err", err)
		}
	})
}

// Fetcher copies NARs this node lacks from peers.
type Fetcher struct {
	Host  host.Host
	Store *chunkstore.Store
	Peers func() []peer.ID // best first (same region, then lowest RTT)
	Log   *slog.Logger
}

// ErrUnavailable means no peer could provide what was asked.
var ErrUnavailable = errors.New("p2p: no peer has it")

func (f *Fetcher) get(ctx context.Context, p peer.ID, kind, id string) ([]byte, error) {
	s, err := f.Host.NewStream(ctx, p, ChunkProtocol)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	if err := json.NewEncoder(s).Encode(chunkRequest{Kind: kind, ID: id}); err != nil {
		return nil, err
	}
	var status [1]byte
	if _, err := io.ReadFull(s, status[:]); err != nil {
		return nil, err
	}
	if status[0] != replyOK {
		return nil, chunkstore.ErrNotFound
	}
	var l [4]byte
	if _, err := io.ReadFull(s, l[:]); err != nil {
		return nil, err
	}
	n := binary.LittleEndian.Uint32(l[:])
	if n > maxFrame {
		return nil, fmt.Errorf("p2p: peer sent %d bytes", n)
	}
	data := make([]byte, n)
	_, err = io.ReadFull(s, data)
	return data, err
}

// FetchNAR makes the manifest and all its chunks local, verifying the
// manifest against its id and every frame against its chunk id.
func (f *Fetcher) FetchNAR(ctx context.Context, id chunkstore.ManifestID) error {
	peers := f.Peers()
	m, err := f.Store.Manifest(id)
	if errors.Is(err, chunkstore.ErrNotFound) {
		m, err = f.fetchManifest(ctx, peers, id)
	}
	if err != nil {
		return err
	}
	for _, c := range m.Chunks {
		if ok, err := f.Store.HasChunk(c.ID); err != nil {
			return err
		} else if ok {
			continue
		}
		if err := f.fetchFrame(ctx, peers, c.ID); err != nil {
			return err
		}
	}
	return nil
}

func (f *Fetcher) fetchManifest(ctx context.Context, peers []peer.ID, id chunkstore.ManifestID) (chunkstore.Manifest, error) {
	for _, p := range peers {
		data, err := f.get(ctx, p, "manifest", id.String())
		if err != nil {
			continue
		}
		var m chunkstore.Manifest
		if m.UnmarshalBinary(data) != nil || m.ID() != id {
			f.Log.Warn("peer sent a bad manifest", "peer", p, "manifest", id)
			continue
		}
		_, err = f.Store.PutManifest(m)
		return m, err
	}
	return chunkstore.Manifest{}, fmt.Errorf("%w: manifest %s", ErrUnavailable, id)
}

func (f *Fetcher) fetchFrame(ctx context.Context, peers []peer.ID, id chunkstore.ChunkID) error {
	for _, p := range peers {
		frame, err := f.get(ctx, p, "frame", id.String())
		if err != nil {
			continue
		}
		if err := f.Store.PutFrame(id, frame); err != nil {
			f.Log.Warn("peer sent a bad frame", "peer", p, "chunk", id, "err", err)
			continue
		}
		return nil
	}
	return fmt.Errorf("%w: chunk %s", ErrUnavailable, id)
}
