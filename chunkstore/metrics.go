package chunkstore

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the store's Prometheus series, registered on the node's
// registry (Config.Metrics); without one they count for nobody.
type metrics struct {
	framesWritten, frameBytesWritten prometheus.Counter
	framesRead, frameBytesRead       prometheus.Counter
	framesSent                       prometheus.Counter // of framesRead: sent with sendfile, not checked again
	corrupt                          prometheus.Counter
	sweeps                           prometheus.Counter
	chunksSwept, bytesSwept          prometheus.Counter
	diskBytesFreed                   prometheus.Counter
	garbage                          prometheus.Gauge // dead frame bytes in sealed segments after the last sweep
	scrubs                           prometheus.Counter
	scrubChunks, scrubBytes          prometheus.Counter
	scrubBad                         prometheus.Counter
	scrubLast                        prometheus.Gauge
	readRepairs                      prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, segs *segments) (*metrics, error) {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "garret", Subsystem: "chunkstore", Name: name, Help: help})
	}
	m := &metrics{
		framesWritten:     c("frames_written_total", "Chunk frames appended to segment files (ingests and peer fetches)."),
		frameBytesWritten: c("frame_bytes_written_total", "Bytes of chunk frames appended to segment files."),
		framesRead:        c("frames_read_total", "Chunk frames read from segment files."),
		frameBytesRead:    c("frame_bytes_read_total", "Bytes of chunk frames read from segment files."),
		framesSent:        c("frames_sendfile_total", "Of the frames read, those sent to a client with sendfile, their CRC-32C checked recently rather than again."),
		corrupt:           c("corrupt_frames_total", "Frames that failed verification and were dropped."),
		sweeps:            c("sweeps_total", "Sweep passes run."),
		chunksSwept:       c("swept_chunks_total", "Unreferenced chunks deleted by sweeps."),
		bytesSwept:        c("swept_frame_bytes_total", "Frame bytes of the chunks sweeps deleted."),
		diskBytesFreed:    c("compaction_disk_bytes_freed_total", "Disk space segment compaction gave back."),
		garbage: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "garret", Subsystem: "chunkstore", Name: "segment_garbage_bytes",
			Help: "Dead frame bytes left in sealed segment files after the last sweep's compaction (below half of each file)."}),
		scrubs:      c("scrub_runs_total", "Scrubs that checked every stored frame."),
		scrubChunks: c("scrub_chunks_checked_total", "Frames scrubs read back and checked in full."),
		scrubBytes:  c("scrub_bytes_checked_total", "Bytes of the frames scrubs checked."),
		scrubBad:    c("scrub_bad_chunks_total", "Frames scrubs found bad (and dropped, for a peer fetch to repair)."),
		scrubLast: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "garret", Subsystem: "chunkstore", Name: "scrub_last_completed_timestamp_seconds",
			Help: "When the last scrub that checked every stored frame finished (Unix time; 0: none since start)."}),
		readRepairs: c("read_repaired_chunks_total", "Bad frames a NAR read replaced with a verified frame from a peer, serving correct bytes."),
	}
	if reg == nil {
		return m, nil
	}
	segBytes := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "garret", Subsystem: "chunkstore", Name: "segment_bytes",
		Help: "Size of the segment files on disk (live and dead frames until compacted)."}, func() float64 {
		var n int64
		for _, s := range segs.list() {
			n += s.size
		}
		return float64(n)
	})
	for _, col := range []prometheus.Collector{m.framesWritten, m.frameBytesWritten, m.framesRead, m.frameBytesRead, m.framesSent,
		m.corrupt, m.sweeps, m.chunksSwept, m.bytesSwept, m.diskBytesFreed, m.garbage, segBytes,
		m.scrubs, m.scrubChunks, m.scrubBytes, m.scrubBad, m.scrubLast, m.readRepairs} {
		if err := reg.Register(col); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) wrote(frameBytes int) {
	m.framesWritten.Inc()
	m.frameBytesWritten.Add(float64(frameBytes))
}

func (m *metrics) swept(st SweepStats) {
	m.sweeps.Inc()
	m.chunksSwept.Add(float64(st.ChunksDeleted))
	m.bytesSwept.Add(float64(st.BytesFreed))
	m.diskBytesFreed.Add(float64(st.DiskBytesFreed))
}

func (m *metrics) scrubChecked(frameBytes int) {
	m.scrubChunks.Inc()
	m.scrubBytes.Add(float64(frameBytes))
}

// scrubbed records a scrub that walked the whole store.
func (m *metrics) scrubbed() {
	m.scrubs.Inc()
	m.scrubLast.Set(float64(time.Now().Unix()))
}
