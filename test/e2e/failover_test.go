package e2e

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/garret-cache/garret/internal/eventually"
)

// nixOn runs a command of nc on the node's emulated host (its network
// namespace), failing the test on error.
func (nd *cnode) nixOn(nc nixClient, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	a := nc.argv("", name, args...)
	cmd := nd.host.Command(ctx, a[0], a[1:]...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestCluster_NixCopyDuringFailover is issue 8's failover test: real
// `nix copy --to` (both Nix versions, no retry wrapper) into the two
// followers, one closure after another, while the leader is killed with
// kill -9. Every copy exits 0: the followers hold the narinfo PUTs during the
// election instead of failing them. The longest copy is the election's cost.
func TestCluster_NixCopyDuringFailover(t *testing.T) {
	clients := nixClients(t)
	t.Parallel()
	c := newCluster(t, 150*time.Millisecond, nodeSpec{name: "eu-1", region: "eu"}, nodeSpec{name: "us-1", region: "us"}, nodeSpec{name: "us-2", region: "us"})
	leader, followers := c.leaderAndFollowers()
	followers[0].createCache("fo")

	type copyRun struct {
		pusher        string
		start, end    time.Time
		output        string
		err           error
		top, dep, url string
	}
	var (
		mu     sync.Mutex
		runs   []copyRun
		killed time.Time
		wg     sync.WaitGroup
	)
	stopAfter := make(chan time.Time, 1) // when the pushers stop starting copies
	firstDone := make(chan struct{}, 4)
	for _, nd := range followers {
		for _, nc := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				env := nixEnv(t, nd.url(), c.admin)
				pusher := nc.name + "→" + nd.name
				var until time.Time
				for i := 0; ; i++ {
					top, dep := buildClosure(t, nc, env)
					r := copyRun{pusher: pusher, start: time.Now(), top: top, dep: dep, url: nd.url()}
					r.output, r.err = nd.nixOn(nc, env, "nix", "copy", "--to", nd.url()+"upload/fo?compression=zstd", top)
					r.end = time.Now()
					mu.Lock()
					runs = append(runs, r)
					mu.Unlock()
					if i == 0 {
						firstDone <- struct{}{}
						until = <-stopAfter
						stopAfter <- until
					}
					if r.end.After(until) {
						return
					}
				}
			}()
		}
	}
	for range len(followers) * len(clients) {
		<-firstDone
	}
	killed = time.Now()
	leader.kill()
	stopAfter <- killed.Add(12 * time.Second) // well past the election
	var newLeader string
	eventually.Within(t, 30*time.Second, "a new leader", func() bool {
		newLeader = followers[0].leader()
		return newLeader != "" && newLeader != leader.name && followers[1].leader() == newLeader
	})
	t.Logf("leader %s killed; %s leads %v later", leader.name, newLeader, time.Since(killed).Round(time.Millisecond))
	wg.Wait()

	var longest time.Duration
	across := 0
	for _, r := range runs {
		d := r.end.Sub(r.start)
		if r.err != nil {
			t.Errorf("%s: nix copy of %s failed after %v: %v\n%s", r.pusher, r.top, d.Round(time.Millisecond), r.err, r.output)
			continue
		}
		longest = max(longest, d)
		if r.start.Before(killed.Add(5*time.Second)) && r.end.After(killed) {
			across++
		}
	}
	t.Logf("%d nix copy runs, %d of them running during the kill and election; longest %v", len(runs), across, longest.Round(time.Millisecond))
	if across == 0 {
		t.Fatal("no copy ran during the election: the test did not test the failover")
	}
	if longest > 30*time.Second {
		t.Errorf("a nix copy took %v across the failover; the hold is 15 s", longest)
	}
	// Every acknowledged path is on both surviving nodes, and substitutes.
	for _, r := range runs {
		if r.err != nil {
			continue
		}
		for _, nd := range followers {
			hash := r.top[len("/nix/store/"):][:32]
			eventually.Within(t, 10*time.Second, fmt.Sprintf("%s on %s", r.top, nd.name), func() bool { return nd.narinfoStatus("fo", hash) == 200 })
		}
	}
}
