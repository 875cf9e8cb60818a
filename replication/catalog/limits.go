package catalog

// Size bounds on what enters the Raft log. They are checked on the leader
// before a command is proposed (validate), never in apply, so changing them
// in a later version cannot make replicas disagree about an entry already in
// the log. The narinfo bounds are generous for real Nix closures: the
// largest NixOS system paths have a few thousand references, a store path is
// at most a store dir plus 245 characters, and a signature is a key name and
// 88 characters of base64.
const (
	// MaxSigs is the number of signatures an object may carry.
	MaxSigs = 64
	// MaxSigBytes bounds one signature ("name:base64").
	MaxSigBytes = 1024
	// MaxReferences is the number of references an object may have.
	MaxReferences = 65536
	// MaxReferenceBytes bounds one reference (a store path or its base name).
	MaxReferenceBytes = 1024
	// MaxStorePathBytes bounds an object's store path.
	MaxStorePathBytes = 1024
	// MaxDeriverBytes bounds an object's deriver.
	MaxDeriverBytes = 1024
	// MaxSystemBytes bounds an object's system ("x86_64-linux").
	MaxSystemBytes = 256
	// MaxCABytes bounds an object's content address ("fixed:r:sha256:…").
	MaxCABytes = 1024
	// MaxStringBytes bounds every other free-form string of a command: a
	// cache's keypair and store dir, an upstream key name, a file's name and
	// content type, an uploader, a NAR URL, a token id or subject.
	MaxStringBytes = 4096
	// MaxListItems bounds a cache's upstream key names.
	MaxListItems = 1024
	// MaxCommandBytes bounds one command, JSON-encoded as it goes into the
	// log (JSON escaping can make a string up to six times longer).
	MaxCommandBytes = 8 << 20
	// MaxBatchBytes bounds one log entry: the batcher starts a new entry
	// rather than exceed it. raft-wal v0.4.1 refuses to read an entry over
	// 64 MiB (segment.MaxEntrySize), which would stall replication for good.
	MaxBatchBytes = 16 << 20
	// MaxRevocationRules bounds the stored revocation rules (by subject
	// and/or cache pattern); a rule with the same subject and pattern as a
	// stored one replaces it.
	MaxRevocationRules = 1024
	// MaxObjectsPerCommand bounds the objects one touch-objects or
	// expire-objects command lists (callers split larger sets).
	MaxObjectsPerCommand = 4096
)
