// Package repair keeps a node's stored chunks sound. A scrub reads every
// stored frame back and checks it in full (chunkstore.Scrub: CRC-32C, then
// decompressed and hashed against its chunk id), at a bounded rate; a frame
// that fails is dropped, and the Scrubber fetches the chunk again from the
// nearest peer that has it (the syncer's Copier, every frame verified).
// A chunk no peer has stays missing, logged at error and counted: reads
// then fetch it from a peer that gets it later, or a re-push stores it.
//
// Scrubs run every [cluster] scrub-interval on every node, a lone node too
// (dropping a bad frame there still stops it being served), and on demand
// (POST /_api/v1/cluster/scrub, garret cluster scrub). The time of the last
// complete scrub is kept in the data dir, so a node that restarts more often
// than the interval still scrubs.
//
// A read that meets a bad frame repairs it at once (chunkstore
// Sources.Refetch, set by the API): that path does not go through here.
package repair
