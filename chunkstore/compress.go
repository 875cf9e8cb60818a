package chunkstore

import (
	"hash/crc32"
	"math/bits"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Compression runs on a store-wide pool of GOMAXPROCS workers, each owning
// one zstd encoder and one output buffer for its lifetime. Compression is
// CPU-bound, so more concurrent compressors than cores would only add
// encoders and buffers to memory; a fixed pool also keeps encoders out of a
// sync.Pool, which the garbage collector empties exactly when memory is
// tight. Each Ingest may have at most MaxChunksInFlight chunks queued or
// compressing, so one large upload cannot starve the others of workers, and
// all ingests together hold at most MaxBytesInFlight of raw chunk buffers.
//
// A worker writes the frame straight into the active segment file and hands
// back only its index entry; the frame never waits in memory for a batch.

// job is one new chunk to compress and store.
type job struct {
	id     ChunkID
	raw    []byte // pooled; the worker returns it
	weight int64  // held on the store's byte semaphore; the worker releases it
	done   chan<- result
}

// result is a stored frame's index entry, or why it could not be stored.
type result struct {
	id   ChunkID
	meta chunkMeta
	err  error
}

func (s *Store) compressor(enc *zstd.Encoder) {
	defer s.workers.Done()
	defer enc.Close()
	var frame []byte
	for j := range s.jobs {
		frame = enc.EncodeAll(j.raw, frame[:0])
		m := chunkMeta{rawSize: uint32(len(j.raw)), frameSize: uint32(len(frame)),
			crc: crc32.Checksum(frame, castagnoli), touched: s.now()}
		s.bufs.put(j.raw)
		s.inflight.Release(j.weight)
		var err error
		m.seg, m.off, err = s.segs.append(frame)
		if err == nil {
			s.metrics.wrote(len(frame))
		}
		j.done <- result{id: j.id, meta: m, err: err}
		if cap(frame) > 2*sizeClass(s.cfg.maxChunk()) {
			frame = nil // do not keep a buffer grown by an odd chunk
		}
	}
}

// bufferPool recycles chunk buffers in power-of-two size classes, so a
// buffer's class is what it costs on the byte semaphore.
type bufferPool struct {
	classes [32]sync.Pool // index: log2 of the class size
}

// minClass is the smallest buffer handed out (4 KiB).
const minClass = 12

// sizeClass is the capacity of the buffer that holds n bytes.
func sizeClass(n int) int {
	if n <= 1<<minClass {
		return 1 << minClass
	}
	return 1 << bits.Len(uint(n-1))
}

// get returns a buffer of length n.
func (p *bufferPool) get(n int) []byte {
	c := sizeClass(n)
	if b, ok := p.classes[bits.Len(uint(c))-1].Get().(*[]byte); ok {
		return (*b)[:n]
	}
	return make([]byte, n, c)
}

// put recycles a buffer from get.
func (p *bufferPool) put(b []byte) {
	c := cap(b)
	if c < 1<<minClass || c&(c-1) != 0 {
		return
	}
	b = b[:0]
	p.classes[bits.Len(uint(c))-1].Put(&b)
}
