package wan

import (
	"errors"
	"os"
	"time"
)

// maxQueueDelay is how long a packet may wait behind a bandwidth cap before
// the link drops it (a router's tail drop), so memory stays bounded.
const maxQueueDelay = 2 * time.Second

// packet is one IP packet on its way to a host.
type packet struct {
	data []byte
	due  time.Time
}

// link is one direction between two hosts: a FIFO of packets, each
// delivered at its due time. Constant latency keeps due times in order;
// when latency changes at run time packets still leave in arrival order.
type link struct {
	to       *Host
	queue    chan packet
	nextFree time.Time // when the (bandwidth-capped) link is free to send again
}

// read takes every packet host h sends and hands it to the link it belongs on.
func (n *Net) read(h *Host) {
	defer n.wg.Done()
	buf := make([]byte, 65536)
	for {
		m, err := h.tun.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			continue // EINTR and the like; a closed tun ends the loop above
		}
		n.route(h, buf[:m])
	}
}

// route decides a packet's fate: dropped (not IPv4, no such host, a cut,
// a full queue) or queued with its due time.
func (n *Net) route(from *Host, p []byte) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	if len(p) < 20 || p[0]>>4 != 4 {
		n.stats.NotIPv4++ // IPv6 router solicitations and such
		return
	}
	to := n.byIP[[4]byte(p[16:20])]
	if to == nil || to == from || n.cut[key(from.Region, to.Region)] || n.cut[key("h:"+from.Name, "h:"+to.Name)] {
		n.stats.Dropped++
		return
	}
	rp := key(from.Region, to.Region)
	l := n.links[[2]*Host{from, to}]
	if l == nil {
		l = &link{to: to, queue: make(chan packet, 1<<14)}
		n.links[[2]*Host{from, to}] = l
		n.wg.Add(1)
		go n.deliver(l)
	}
	now := time.Now()
	depart := now
	if bw := n.bandwidth[rp]; bw > 0 {
		if l.nextFree.After(depart) {
			depart = l.nextFree
		}
		if depart.Sub(now) > maxQueueDelay {
			n.stats.Dropped++
			return
		}
		depart = depart.Add(time.Duration(float64(len(p)) / bw * float64(time.Second)))
		l.nextFree = depart
	}
	select {
	case l.queue <- packet{data: append([]byte(nil), p...), due: depart.Add(n.latency[rp])}:
		n.stats.Forwarded++
		n.pairBytes[rp] += uint64(len(p))
	default:
		n.stats.Dropped++
	}
}

// deliver writes a link's packets into the receiving host at their due time.
func (n *Net) deliver(l *link) {
	defer n.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for p := range l.queue {
		if d := time.Until(p.due); d > 0 {
			timer.Reset(d)
			<-timer.C
		}
		if _, err := l.to.tun.Write(p.data); err != nil && errors.Is(err, os.ErrClosed) {
			for range l.queue { // drain until Close closes the queue
			}
			return
		}
	}
}
