package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/garret-cache/garret/api/token"
	v1 "github.com/garret-cache/garret/api/v1"
	"github.com/garret-cache/garret/chunkstore"
	"github.com/garret-cache/garret/internal/nixcompress"
	"github.com/garret-cache/garret/internal/nixid"
	"github.com/garret-cache/garret/replication/catalog"
	"github.com/garret-cache/garret/replication/gc"
	"github.com/garret-cache/garret/replication/p2p"
)

// Catalog is what the API needs from the Raft catalog: writes go through
// consensus, reads come from the node's local state.
type Catalog interface {
	CreateCache(ctx context.Context, c catalog.Cache) error
	ConfigureCache(ctx context.Context, name nixid.CacheName, p catalog.CachePatch) error
	DestroyCache(ctx context.Context, name nixid.CacheName, how catalog.Deletion) error
	PutObject(ctx context.Context, o catalog.Object) error
	// AwaitWritable holds a write through an election and fails fast when
	// this node cannot take writes; called before reading a write's body.
	AwaitWritable(ctx context.Context) error
	DeleteObjects(ctx context.Context, cache nixid.CacheName, hashes []nixid.StorePathHash) (int, error)
	PutFile(ctx context.Context, f catalog.File) error
	RevokeToken(ctx context.Context, jti string, expiresAt time.Time) error
	RevokeTokens(ctx context.Context, r catalog.RevocationRule) error
	Cache(name nixid.CacheName) (catalog.Cache, error)
	Caches() ([]catalog.Cache, error)
	Object(cache nixid.CacheName, h nixid.StorePathHash) (catalog.Object, error)
	// ObjectRaw is the object as stored (catalog.DecodeObject decodes it):
	// the narinfo cache's key.
	ObjectRaw(cache nixid.CacheName, h nixid.StorePathHash) ([]byte, error)
	// ObjectsGeneration moves whenever an object or a cache changes: a
	// narinfo rendered since it last moved is current.
	ObjectsGeneration() uint64
	// RevocationsGeneration moves whenever tokens are revoked: a token
	// found not revoked since it last moved is still not revoked.
	RevocationsGeneration() uint64
	ObjectByNarURL(cache nixid.CacheName, url string) (catalog.Object, error)
	MissingPaths(cache nixid.CacheName, hs []nixid.StorePathHash) ([]nixid.StorePathHash, error)
	File(cache nixid.CacheName, name string) (catalog.File, error)
	// ForEachObject visits a cache's objects (for the cluster page's
	// counts), a page at a time.
	ForEachObject(cache nixid.CacheName, fn func(catalog.Object) error) error
	// IsRevoked and RevocationRules fail when the state cannot be read;
	// the request is then refused (503), never let through.
	IsRevoked(jti string) (bool, error)
	RevocationRules() ([]catalog.RevocationRule, error)
	Ready() error
}

// ChunkStore is what the API needs from the local chunk store.
type ChunkStore interface {
	Ingest(ctx context.Context, r io.Reader) (*chunkstore.IngestResult, error)
	PutManifest(m chunkstore.Manifest) (chunkstore.ManifestID, error)
	OpenNARWith(id chunkstore.ManifestID, src chunkstore.Sources) (*chunkstore.NAR, error)
}

// Fetcher gets what a NAR needs from peers: its manifest, and a Remote
// that serves the chunks this node lacks.
type Fetcher interface {
	FetchManifest(ctx context.Context, id chunkstore.ManifestID) error
	Remote(ctx context.Context, missing []chunkstore.ChunkID) (chunkstore.Remote, error)
}

// ClusterView reports the cluster as this node sees it and carries out the
// admin commands (*cluster.Controller). Its methods return *cluster.Error
// for what the caller can fix (ErrNoSuchNode: 404, ErrRefused: 400),
// catalog.ErrNotLeader (wrapped) when no leader can be reached, anything
// else for internal failures.
type ClusterView interface {
	ClusterStatus(ctx context.Context) v1.ClusterStatus
	// JoinCluster gossip-joins the given "host:port" addresses and returns
	// how many answered.
	JoinCluster(addrs []string) (int, error)
	// LeaveCluster starts this node's graceful leave (after which garretd
	// exits) and returns at once, so the request can still be answered.
	LeaveCluster() (v1.ClusterLeaveResponse, error)
	// RemoveNode has the leader remove a node (name or peer ID) from Raft.
	RemoveNode(ctx context.Context, node string) (v1.ClusterRemoveResponse, error)
	// LiveNodes are the nodes gossip shows alive, this one included, with
	// their public API URLs (for clients choosing the nearest).
	LiveNodes() []v1.NodeEndpoint
}

// Scrubber checks this node's chunks on demand and repairs the bad ones
// from peers (*repair.Scrubber). chunkstore.ErrScrubRunning if a scrub is
// already running.
type Scrubber interface {
	ScrubNow(ctx context.Context, rate int64) (v1.ClusterScrubResponse, error)
}

// PeerStaging finds a NAR that Nix PUT to another node of the cluster.
type PeerStaging interface {
	FindStaged(ctx context.Context, cache, url string) (p2p.StagedNAR, bool)
}

// Verifier checks tokens.
type Verifier interface {
	Verify(raw string) (*token.Claims, error)
}

var (
	_ Catalog    = (*catalog.Catalog)(nil)
	_ ChunkStore = (*chunkstore.Store)(nil)
	_ Verifier   = (*token.Authority)(nil)
)

// Config tunes the API.
type Config struct {
	APIEndpoint         string   // Attic's api-endpoint; "" = derived from Host
	SubstituterEndpoint string   // Attic's substituter-endpoint; "" = APIEndpoint
	AllowedHosts        []string // exact Host header values; empty = any
	MaxNarInfoSize      int64    // upload-info header/preamble and narinfo PUT cap
	SoftDeleteCaches    bool     // Attic's soft-delete-caches: a destroyed cache's name is never reused
	MaxJSONSize         int64    // JSON request bodies
	StagingTTL          time.Duration
	MaxStaged           int // NARs uploaded without their narinfo yet, node-wide
	MaxStagedPerCache   int // the same, per cache; 0 = MaxStaged/10
	// BodyIdleTimeout gives up a request whose body sends nothing for this
	// long (408); see DefaultBodyIdleTimeout.
	BodyIdleTimeout time.Duration
	// DecoderMemory is the node's budget for the decompressors of
	// concurrent uploads ([uploads] decoder-memory); an upload waits for its
	// share at most BodyIdleTimeout (see decoderMemoryError).
	DecoderMemory int64
	// MaxUnauthorizedBytes bounds the body bytes held node-wide by requests
	// not yet authorized on their cache (see preauth.go).
	MaxUnauthorizedBytes int64
	// PriorityOffset is added to every cache's priority in nix-cache-info
	// ([cluster] priority-offset).
	PriorityOffset int32
	// NodeName and Region say what this node is, on the web pages.
	NodeName, Region string
}

// DefaultDecoderMemory is [uploads] decoder-memory's default.
const DefaultDecoderMemory = 256 << 20

// DefaultConfig returns Attic's defaults.
func DefaultConfig() Config {
	return Config{MaxNarInfoSize: 1 << 20, MaxJSONSize: 2 << 20, StagingTTL: time.Hour, MaxStaged: 10000, BodyIdleTimeout: DefaultBodyIdleTimeout,
		DecoderMemory: DefaultDecoderMemory, MaxUnauthorizedBytes: DefaultMaxUnauthorizedBytes}
}

// Server serves the HTTP API of one node.
type Server struct {
	cfg       Config
	catalog   Catalog
	store     ChunkStore
	tokens    Verifier
	unrevoked *lru.Cache[*token.Claims, uint64] // verdicts of verifyToken
	log       *slog.Logger
	staging   *staging
	preauth   *byteBudget
	keys      keyCache
	narinfos  narinfoCache
	mux       *http.ServeMux
	metrics   *metrics
	fetcher   Fetcher
	readiness func() error // nil: the catalog alone decides
	// peerStaging is nil on a lone node.
	peerStaging PeerStaging
	cluster     ClusterView
	scrubber    Scrubber // nil: no scrub endpoint
	// decoders bounds the memory of upload decompressors; floor (nil: none)
	// refuses pushes when the disk is low.
	decoders *nixcompress.Budget
	floor    DiskFloor
	copies   Durability
	// downloads (nil: none) records NAR downloads for retention; collector
	// (nil: no route) runs a GC pass on demand.
	downloads Downloads
	collector Collector
	// signer (nil: none) signs web links; gcRuns (nil: not shown) is the
	// node's GC history; cacheStats memoises the cluster page's counts.
	signer     Signer
	gcRuns     func() []gc.Run
	cacheStats cacheStats
}

// Registry is where the API's series go and what /metrics serves: the
// node's registry (a *prometheus.Registry will do).
type Registry interface {
	prometheus.Registerer
	prometheus.Gatherer
}

// Deps are the components the API works through, given at construction.
// Catalog, Store and Tokens are required; the others are optional (a lone
// node has no peers to read from).
type Deps struct {
	Catalog Catalog
	Store   ChunkStore
	Tokens  Verifier
	Log     *slog.Logger
	// Metrics is the node's registry; the API registers its series there
	// and serves it at /metrics (nil: a registry of the server's own).
	Metrics Registry
	// Cluster enables GET /_api/v1/cluster and the cluster admin routes.
	Cluster ClusterView
	// Fetcher fills in NARs this node lacks from its peers.
	Fetcher Fetcher
	// PeerStaging lets a narinfo PUT commit a NAR staged on a peer (Nix's
	// two PUTs reached different nodes behind a load balancer).
	PeerStaging PeerStaging
	// Readiness is a check /readyz runs besides the catalog's.
	Readiness func() error
	// DiskFloor refuses pushes while the data dir is low on space.
	DiskFloor DiskFloor
	// Scrubber enables POST /_api/v1/cluster/scrub.
	Scrubber Scrubber
	// Copies holds a push back until enough nodes hold its chunks
	// ([cluster] min-copies-before-ack); nil: acknowledged once stored here.
	Copies Durability
	// Downloads is told of every NAR download, for retention
	// (*gc.Accesses); nil: none recorded.
	Downloads Downloads
	// Collector enables POST /_api/v1/cluster/gc (*gc.Collector).
	Collector Collector
	// Signer signs the tokens of web links to the cluster page (the node's
	// *token.Authority); nil: no web links.
	Signer Signer
	// GCRuns are the node's recent garbage collection passes, newest first
	// (gc.History.Runs), for the cluster page; nil: not shown.
	GCRuns func() []gc.Run
}

// Downloads records NAR downloads; Record must not block.
type Downloads interface {
	// Record is given the object's last use as the catalog has it (see
	// catalog.Object.LastUsed), so a recent one need not be recorded again.
	Record(cache nixid.CacheName, hash nixid.StorePathHash, lastUsed time.Time)
}

// Collector runs one garbage collection pass now (*gc.Collector); an error
// says why it did not complete.
type Collector interface {
	CollectNow(ctx context.Context) (v1.ClusterGCResponse, error)
}

// Durability makes a pushed manifest durable before its push is
// acknowledged (*syncer.Acker): Ensure returns once enough nodes hold it;
// Start begins that in the background, for an Ensure to come (Nix's NAR PUT
// before its narinfo PUT).
type Durability interface {
	Ensure(ctx context.Context, id chunkstore.ManifestID) error
	Start(id chunkstore.ManifestID)
}

// New builds the API server.
func New(cfg Config, deps Deps) *Server {
	if cfg.MaxNarInfoSize <= 0 {
		cfg.MaxNarInfoSize = 1 << 20
	}
	if cfg.MaxJSONSize <= 0 {
		cfg.MaxJSONSize = 2 << 20
	}
	if cfg.StagingTTL <= 0 {
		cfg.StagingTTL = time.Hour
	}
	if cfg.MaxStaged <= 0 {
		cfg.MaxStaged = 10000
	}
	if cfg.MaxStagedPerCache <= 0 {
		cfg.MaxStagedPerCache = max(cfg.MaxStaged/10, 1)
	}
	if cfg.BodyIdleTimeout <= 0 {
		cfg.BodyIdleTimeout = DefaultBodyIdleTimeout
	}
	if cfg.DecoderMemory <= 0 {
		cfg.DecoderMemory = DefaultDecoderMemory
	}
	if cfg.MaxUnauthorizedBytes <= 0 {
		cfg.MaxUnauthorizedBytes = DefaultMaxUnauthorizedBytes
	}
	log := deps.Log
	if log == nil {
		log = slog.Default()
	}
	s := &Server{
		cfg: cfg, catalog: deps.Catalog, store: deps.Store, tokens: deps.Tokens,
		log:     log.With("component", "api"),
		staging: newStaging(cfg.StagingTTL, cfg.MaxStaged, cfg.MaxStagedPerCache),
		preauth: &byteBudget{max: cfg.MaxUnauthorizedBytes},
		mux:     http.NewServeMux(),
		metrics: newMetrics(deps.Metrics),

		fetcher: deps.Fetcher, readiness: deps.Readiness, peerStaging: deps.PeerStaging, cluster: deps.Cluster, floor: deps.DiskFloor,
		copies:    deps.Copies,
		decoders:  nixcompress.NewBudget(cfg.DecoderMemory, cfg.BodyIdleTimeout),
		scrubber:  deps.Scrubber,
		downloads: deps.Downloads, collector: deps.Collector,
		signer: deps.Signer, gcRuns: deps.GCRuns,
	}
	s.unrevoked, _ = lru.New[*token.Claims, uint64](unrevokedMax) // errors only for a size ≤ 0
	s.routes()
	return s
}

// Handler returns the root handler with the middleware chain applied.
func (s *Server) Handler() http.Handler {
	return s.withRequestState(s.withDiskFloor(s.mux))
}

func (s *Server) routes() {
	m := s.mux
	s.webRoutes(m)
	m.Handle("GET /metrics", s.metrics.handler())
	m.Handle("GET /healthz", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") }))
	m.Handle("GET /readyz", s.handle(s.readyz))

	// Nix binary-cache protocol (GET routes also answer HEAD).
	m.Handle("GET /{cache}/nix-cache-info", s.handle(s.getNixCacheInfo))
	m.Handle("PUT /{cache}/nix-cache-info", s.handle(s.putNixCacheInfo))
	m.Handle("GET /{cache}/{file}", s.handle(s.getCacheFile))
	m.Handle("PUT /{cache}/{file}", s.handle(s.putCacheFile))
	m.Handle("GET /{cache}/nar/{file}", s.handle(s.getNar))
	m.Handle("PUT /{cache}/nar/{file}", s.handle(s.putNar))
	m.Handle("GET /{cache}/log/{drv}", s.handle(s.getAuxFile("log/", "drv")))
	m.Handle("PUT /{cache}/log/{drv}", s.handle(s.putAuxFile("log/", "drv")))
	m.Handle("GET /{cache}/realisations/{id}", s.handle(s.getAuxFile("realisations/", "id")))
	m.Handle("PUT /{cache}/realisations/{id}", s.handle(s.putAuxFile("realisations/", "id")))
	m.Handle("GET /{cache}/build-trace-v2/{drv}/{out}", s.handle(s.getAuxFile("build-trace-v2/", "drv", "out")))
	m.Handle("PUT /{cache}/build-trace-v2/{drv}/{out}", s.handle(s.putAuxFile("build-trace-v2/", "drv", "out")))
	m.Handle("GET /{cache}/debuginfo/{id}", s.handle(s.getAuxFile("debuginfo/", "id")))
	m.Handle("PUT /{cache}/debuginfo/{id}", s.handle(s.putAuxFile("debuginfo/", "id")))
	m.Handle("GET /{cache}/attic-cache-info", s.handle(s.getCacheConfig))

	// Attic API.
	m.Handle("POST /_api/v1/get-missing-paths", s.handle(s.getMissingPaths))
	m.Handle("PUT /_api/v1/upload-path", s.handle(s.uploadPath))
	m.Handle("GET /_api/v1/cache-config/{cache}", s.handle(s.getCacheConfig))
	m.Handle("POST /_api/v1/cache-config/{cache}", s.handle(s.createCache))
	m.Handle("PATCH /_api/v1/cache-config/{cache}", s.handle(s.configureCache))
	m.Handle("DELETE /_api/v1/cache-config/{cache}", s.handle(s.destroyCache))

	// Garret's additions.
	m.Handle("GET /_api/v1/caches", s.handle(s.listCaches))
	m.Handle("POST /_api/v1/delete-paths", s.handle(s.deletePaths))
	m.Handle("POST /_api/v1/revoke-token", s.handle(s.revokeToken))
	m.Handle("GET /_api/v1/cluster", s.handle(s.clusterStatus))
	m.Handle("POST /_api/v1/cluster/join", s.handle(s.clusterJoin))
	m.Handle("POST /_api/v1/cluster/leave", s.handle(s.clusterLeave))
	m.Handle("POST /_api/v1/cluster/remove", s.handle(s.clusterRemove))
	m.Handle("POST /_api/v1/cluster/scrub", s.handle(s.clusterScrub))
	m.Handle("POST /_api/v1/cluster/gc", s.handle(s.clusterGC))

	m.Handle("/", s.handle(func(http.ResponseWriter, *http.Request) error { return errNotFound }))
}

type ctxKey int

const (
	ctxRequestID ctxKey = iota
	ctxCaller
	ctxUpload
)

// isUpload reports whether the request came in under UploadPrefix.
func isUpload(r *http.Request) bool {
	up, _ := r.Context().Value(ctxUpload).(bool)
	return up
}

// stripUploadPrefix serves /upload/CACHE/… as /CACHE/…, marked as an upload
// (the cache name "upload" is reserved for this).
func stripUploadPrefix(r *http.Request) *http.Request {
	rest, ok := strings.CutPrefix(r.URL.Path, UploadPrefix+"/")
	if !ok {
		return r
	}
	r = r.WithContext(context.WithValue(r.Context(), ctxUpload, true))
	u := *r.URL
	u.Path, u.RawPath = "/"+rest, strings.TrimPrefix(u.RawPath, UploadPrefix)
	r.URL = &u
	return r
}

func requestID(r *http.Request) string {
	id, _ := r.Context().Value(ctxRequestID).(string)
	return id
}

// withRequestState is the middleware chain: metrics, request id, Host
// restriction, auth. Every request is counted, those refused before the mux
// too (as route "unmatched").
func (s *Server) withRequestState(next http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		start := time.Now()
		w := &statusWriter{ResponseWriter: rw, status: http.StatusOK}
		var b [8]byte
		_, _ = rand.Read(b[:])
		id := hex.EncodeToString(b[:])
		w.Header().Set("X-Request-Id", id)
		ctx := context.WithValue(r.Context(), ctxRequestID, id)
		r = r.WithContext(ctx)
		// The body is counted on this copy of the request: net/http looks
		// at its own request's body (for "100 Continue") and must see it
		// unwrapped.
		body := &countingBody{ReadCloser: r.Body}
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = body
		}
		defer func() { s.metrics.observe(r, w.status, time.Since(start), body.n.Load(), w.n) }()
		if headerBytes(r.Header) > MaxHeaderBytes {
			writeError(w, r, s.log, &Error{Status: http.StatusRequestHeaderFieldsTooLarge, Kind: "RequestError",
				Message: fmt.Sprintf("Request headers are larger than %d bytes.", MaxHeaderBytes)})
			return
		}
		if len(s.cfg.AllowedHosts) > 0 && !slices.Contains(s.cfg.AllowedHosts, r.Host) {
			writeError(w, r, s.log, requestError("Bad Host"))
			return
		}
		r = stripUploadPrefix(r)
		c, err := s.authenticate(r)
		if err != nil {
			writeError(w, r, s.log, err)
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), ctxCaller, c))
		defer withBodyDeadline(w, r, s.cfg.BodyIdleTimeout)()
		next.ServeHTTP(w, r)
		// Yield before net/http flushes this response and reads the
		// connection's next request: without it a goroutine whose client
		// answers at once serves it again and again while other ready
		// connections wait, and the latency tail grows with the number of
		// connections. With it, ready connections take turns. Measured with
		// wrk on narinfo (2 cores, 1 s warm-up, 5 s runs, 3 pairs): p99 at 64
		// connections 18–21 → 6–7 ms at the same req/s; at 1000, 95–128 →
		// 60–77 ms, req/s −10 %.
		runtime.Gosched()
	})
}

// MaxHeaderBytes caps a request's headers; past it the API answers 431 with
// Attic's JSON body. The http.Server's own, larger limit (which answers in
// plain text) only stops abuse.
const MaxHeaderBytes = 64 << 10

func headerBytes(h http.Header) int {
	n := 0
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// statusWriter records the status code and the body bytes written, for
// metrics.
type statusWriter struct {
	http.ResponseWriter
	status      int
	n           int64
	wroteHeader bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader && code >= 200 { // 1xx are interim; the final status follows
		w.status, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	w.wroteHeader = true
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

// ReadFrom passes net/http's ReadFrom through (a NAR stream's sendfile,
// chunkstore/sendfile.go), counting the bytes as Write does.
func (w *statusWriter) ReadFrom(r io.Reader) (int64, error) {
	w.wroteHeader = true
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(struct{ io.Writer }{w.ResponseWriter}, r)
	}
	w.n += n
	return n, err
}

// countingBody counts the request body bytes the handler read.
type countingBody struct {
	io.ReadCloser
	n atomic.Int64 // net/http may read the rest of the body on another goroutine
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// readyz answers 200 once the node knows a leader and has applied the
// entries it knows are committed, and passes the node's own check (in a
// cluster: gossip sees another member). Load balancers and fly.io use it.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	err := s.catalog.Ready()
	if err == nil && s.readiness != nil {
		err = s.readiness()
	}
	if err != nil {
		return notReady(err)
	}
	_, err = io.WriteString(w, "ready\n")
	return err
}

// notReady is /readyz's 503: the answer a load balancer polls for, so
// not logged as a failure.
func notReady(err error) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Kind: "NotReady", Message: "Not ready: " + err.Error(), cause: err, answer: true}
}
