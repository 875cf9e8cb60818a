package p2p

import (
	"context"
	"encoding/json"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// maxReply caps the JSON answer of a small request/response protocol.
const maxReply = 4096

// Call is one request/response exchange of JSON on a new stream to p:
// req (if not nil) is sent, then one reply of at most 4 KiB is decoded into
// reply. The stream's deadline is ctx's. A stream a resource limit refuses
// (here or at p, where the handler then never runs) is tried again for up
// to SlotWait.
func Call(ctx context.Context, h host.Host, p peer.ID, proto protocol.ID, req, reply any) error {
	start := time.Now()
	for try := 1; ; try++ {
		err := call(ctx, h, p, proto, req, reply)
		if err == nil || !Refused(err) {
			return err
		}
		if werr := waitSlot(ctx, start, try, err); werr != nil {
			return werr
		}
	}
}

func call(ctx context.Context, h host.Host, p peer.ID, proto protocol.ID, req, reply any) error {
	s, err := h.NewStream(ctx, p, proto)
	if err != nil {
		return err
	}
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	if req != nil {
		if err := json.NewEncoder(s).Encode(req); err != nil {
			return err
		}
	}
	return json.NewDecoder(io.LimitReader(s, maxReply)).Decode(reply)
}
