package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// cycleLua makes wrk cycle through the URL paths listed (one a line) in the
// file given as the script's argument, each thread from its own offset, so
// no single URL is hot. done() prints the summary and, per thread, where it
// started and how many requests it issued (for the NAR accounting) as JSON.
const cycleLua = `
local threads = {}
local count = 0
local stride = 7919

function setup(thread)
  thread:set("id", count)
  count = count + 1
  table.insert(threads, thread)
end

function init(args)
  list = {}
  for line in io.lines(args[1]) do list[#list + 1] = line end
  pos = (id * stride) % #list
  start = pos
  issued = 0
end

function request()
  pos = pos % #list + 1
  issued = issued + 1
  return wrk.format("GET", list[pos])
end

function done(summary, latency, requests)
  local t = {}
  for _, th in ipairs(threads) do
    t[#t + 1] = string.format('{"start":%d,"issued":%d}', th:get("start"), th:get("issued"))
  end
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,"threads":[%s]}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max, table.concat(t, ",")))
end
`

// wrkResult is one wrk run's summary.
type wrkResult struct {
	Requests   int64 `json:"requests"`
	DurationUS int64 `json:"duration_us"`
	Bytes      int64 `json:"bytes"`
	Connect    int64 `json:"connect"`
	Read       int64 `json:"read"`
	Write      int64 `json:"write"`
	Status     int64 `json:"status"` // non-2xx/3xx responses
	Timeout    int64 `json:"timeout"`
	P50US      int64 `json:"p50_us"`
	P99US      int64 `json:"p99_us"`
	MaxUS      int64 `json:"max_us"`
	Threads    []struct {
		Start  int `json:"start"`
		Issued int `json:"issued"`
	} `json:"threads"`
}

func (r wrkResult) perSec() float64  { return float64(r.Requests) / (float64(r.DurationUS) / 1e6) }
func (r wrkResult) errors() int64    { return r.Connect + r.Read + r.Write + r.Status + r.Timeout }
func (r wrkResult) seconds() float64 { return float64(r.DurationUS) / 1e6 }

// issued calls f with the index (into the URL list of length n) of every
// request the threads issued, in order.
func (r wrkResult) issued(n int, f func(i int)) {
	for _, t := range r.Threads {
		pos := t.Start
		for range t.Issued {
			pos = pos%n + 1
			f(pos - 1)
		}
	}
}

// runWrk runs wrk against base (http://host:port) cycling through urls
// (absolute paths) with conns connections: two threads (one at a single
// connection: wrk needs a thread per connection), --latency, 10 s timeout.
func (s *suite) runWrk(name, base string, urls []string, conns int, d time.Duration) (wrkResult, error) {
	dir := filepath.Join(s.env.dir, "wrk")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return wrkResult{}, err
	}
	script := filepath.Join(dir, "cycle.lua")
	if err := os.WriteFile(script, []byte(cycleLua), 0o644); err != nil {
		return wrkResult{}, err
	}
	list := filepath.Join(dir, name+".txt")
	if err := os.WriteFile(list, []byte(strings.Join(urls, "\n")+"\n"), 0o644); err != nil {
		return wrkResult{}, err
	}
	threads := min(2, conns)
	cmd := exec.Command("wrk", "-t", fmt.Sprint(threads), "-c", fmt.Sprint(conns), "-d", fmt.Sprintf("%.0fs", d.Seconds()),
		"--timeout", "10s", "--latency", "-s", script, base, list)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return wrkResult{}, fmt.Errorf("wrk %s c%d: %v: %s", name, conns, err, stderr.String())
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if js, ok := strings.CutPrefix(line, "WRKJSON "); ok {
			var r wrkResult
			if err := json.Unmarshal([]byte(js), &r); err != nil {
				return wrkResult{}, fmt.Errorf("wrk output: %w", err)
			}
			return r, nil
		}
	}
	return wrkResult{}, fmt.Errorf("wrk %s c%d printed no summary: %s", name, conns, out.String())
}

func wrkVersion() string {
	out, _ := exec.Command("wrk", "-v").CombinedOutput()
	v, _, _ := strings.Cut(strings.TrimSpace(string(out)), " Copyright")
	return strings.TrimSpace(strings.Split(v, "\n")[0])
}
