package p2p

import (
	"context"
	"encoding/json"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// StagedProtocol asks a peer for a NAR that `nix copy --to` PUT to it
// and whose narinfo went to another node (a load balancer between them).
const StagedProtocol protocol.ID = "/garret/staged/1"

// stagedLookupTimeout bounds asking every peer.
const stagedLookupTimeout = 5 * time.Second

// StagedNAR describes a staged upload: what the node that took the NAR
// verified while ingesting it. Its manifest and chunks stay on that node
// (and are fetched like any other NAR's).
type StagedNAR struct {
	Manifest    string `json:"manifest"` // hex manifest id
	NarHash     string `json:"nar_hash"` // sha256:<nix-base32>
	NarSize     int64  `json:"nar_size"`
	StoredSize  int64  `json:"stored_size"`
	Compression string `json:"compression"` // what the upload was compressed with
	// File is the hex manifest id of the upload as sent, when the node kept
	// it (uploads to the substituter URL), and FileSize its size.
	File     string `json:"file,omitempty"`
	FileSize int64  `json:"file_size,omitempty"`
}

type stagedRequest struct {
	Cache string `json:"cache"`
	URL   string `json:"url"` // nar/<filehash>.nar[.ext]
}

type stagedReply struct {
	Found  bool      `json:"found"`
	Staged StagedNAR `json:"staged"`
}

// ServeStaged answers peers' lookups from this node's staged uploads.
func ServeStaged(h host.Host, lookup func(cache, url string) (StagedNAR, bool)) {
	h.SetStreamHandler(StagedProtocol, func(s network.Stream) {
		defer s.Close()
		_ = s.SetDeadline(time.Now().Add(stagedLookupTimeout))
		var req stagedRequest
		if err := json.NewDecoder(io.LimitReader(s, 4096)).Decode(&req); err != nil {
			_ = s.Reset()
			return
		}
		var reply stagedReply
		reply.Staged, reply.Found = lookup(req.Cache, req.URL)
		_ = json.NewEncoder(s).Encode(reply)
	})
}

// StagedFinder asks peers for a staged upload.
type StagedFinder struct {
	Host  host.Host
	Peers func() []peer.ID
}

// FindStaged asks every peer at once and returns the first that has the
// upload; false when none answers yes within the timeout.
func (f *StagedFinder) FindStaged(ctx context.Context, cache, url string) (StagedNAR, bool) {
	peers := f.Peers()
	if len(peers) == 0 {
		return StagedNAR{}, false
	}
	ctx, cancel := context.WithTimeout(ctx, stagedLookupTimeout)
	defer cancel()
	found := make(chan StagedNAR, len(peers))
	done := make(chan struct{}, len(peers))
	for _, p := range peers {
		go func() {
			defer func() { done <- struct{}{} }()
			if st, ok := f.ask(ctx, p, cache, url); ok {
				found <- st
			}
		}()
	}
	for range peers {
		select {
		case st := <-found:
			return st, true
		case <-done:
		case <-ctx.Done():
			return StagedNAR{}, false
		}
	}
	select { // the last answer may have been a find
	case st := <-found:
		return st, true
	default:
		return StagedNAR{}, false
	}
}

func (f *StagedFinder) ask(ctx context.Context, p peer.ID, cache, url string) (StagedNAR, bool) {
	var reply stagedReply
	if err := Call(ctx, f.Host, p, StagedProtocol, stagedRequest{Cache: cache, URL: url}, &reply); err != nil || !reply.Found {
		return StagedNAR{}, false
	}
	return reply.Staged, true
}
