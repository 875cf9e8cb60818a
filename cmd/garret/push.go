package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	v1 "github.com/garret-cache/garret/api/v1"
	"github.com/garret-cache/garret/internal/nixdaemon"
	"github.com/garret-cache/garret/internal/nixid"
)

func pushCmd() *cobra.Command {
	var o pushOptions
	cmd := &cobra.Command{
		Use:   "push CACHE [PATH...]",
		Short: "Push store paths and their closures to a cache",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if o.jobs < 1 {
				return errors.New("--jobs must be at least 1")
			}
			paths := args[1:]
			if o.stdin {
				if len(paths) > 0 {
					return errors.New("--stdin cannot be combined with paths")
				}
				sc := bufio.NewScanner(os.Stdin)
				for sc.Scan() {
					if p := strings.TrimSpace(sc.Text()); p != "" {
						paths = append(paths, p)
					}
				}
			}
			if len(paths) == 0 {
				return errors.New("no paths to push")
			}
			return push(args[0], paths, o)
		},
	}
	f := cmd.Flags()
	f.IntVarP(&o.jobs, "jobs", "j", 5, "uploads in parallel")
	f.BoolVar(&o.noClosure, "no-closure", false, "push only the given paths, not their closures")
	f.BoolVar(&o.ignoreUpstream, "ignore-upstream-cache-filter", false, "also push paths signed by the cache's upstream keys")
	f.BoolVar(&o.stdin, "stdin", false, "read paths from standard input, one per line")
	return cmd
}

type pushOptions struct {
	jobs                             int
	noClosure, ignoreUpstream, stdin bool
}

// pathInfo is what push needs of a store path.
type pathInfo struct {
	Path       string
	NarHash    nixid.NarHash
	NarSize    int64
	References []string // full store paths
	Deriver    string   // full store path, or ""
	Signatures []string
	CA         string
}

// resolveStorePaths turns ./result-style symlinks and paths inside store
// paths into store paths, as Nix does: links are followed while the path is
// outside the store, then anything below the store path is dropped.
func resolveStorePaths(paths []string) ([]string, error) {
	storeDir := nixdaemon.StoreDir()
	out := make([]string, 0, len(paths))
	seen := map[string]bool{}
	for _, arg := range paths {
		p, err := filepath.Abs(arg)
		if err != nil {
			return nil, err
		}
		for range 40 {
			if strings.HasPrefix(p, storeDir+"/") {
				break
			}
			target, err := os.Readlink(p)
			if err != nil {
				break // not a link (or missing): reported below
			}
			if !filepath.IsAbs(target) {
				target = filepath.Join(filepath.Dir(p), target)
			}
			p = filepath.Clean(target)
		}
		rest, ok := strings.CutPrefix(p, storeDir+"/")
		if !ok || rest == "" {
			return nil, fmt.Errorf("%s is not in the Nix store (%s)", arg, storeDir)
		}
		base, _, _ := strings.Cut(rest, "/")
		if p = storeDir + "/" + base; !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out, nil
}

// queryStore asks the Nix daemon for the paths' metadata, and with closure
// for that of everything they reference, recursively.
func queryStore(paths []string, closure bool) (_ []pathInfo, err error) {
	d, err := nixdaemon.Start(context.Background(), func(line string) { fmt.Fprintln(os.Stderr, line) })
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := d.Close(); err == nil {
			err = cerr
		}
	}()
	var got []*nixdaemon.PathInfo
	if closure {
		if got, err = d.Closure(paths); err != nil {
			return nil, err
		}
	} else {
		for _, p := range paths {
			in, err := d.QueryPathInfo(p)
			if err != nil {
				return nil, err
			}
			got = append(got, in)
		}
	}
	infos := make([]pathInfo, 0, len(got))
	for _, in := range got {
		if in.NarSize > math.MaxInt64 {
			return nil, fmt.Errorf("%s: NAR size %d is out of range", in.Path, in.NarSize)
		}
		infos = append(infos, pathInfo{Path: in.Path, NarHash: in.NarHash, NarSize: int64(in.NarSize),
			References: in.References, Deriver: in.Deriver, Signatures: in.Sigs, CA: in.CA})
	}
	return infos, nil
}

func push(ref string, paths []string, o pushOptions) error {
	c, _, cache, err := connect(ref)
	if err != nil {
		return err
	}
	cc, err := c.cacheConfig(cache)
	if err != nil {
		return err
	}
	if cc.APIEndpoint != nil && *cc.APIEndpoint != "" {
		c.endpoint = *cc.APIEndpoint
	}
	if paths, err = resolveStorePaths(paths); err != nil {
		return err
	}
	infos, err := queryStore(paths, !o.noClosure)
	if err != nil {
		return err
	}
	var upstream []string
	if cc.UpstreamCacheKeyNames != nil && !o.ignoreUpstream {
		upstream = *cc.UpstreamCacheKeyNames
	}
	byHash := map[string]pathInfo{}
	skipped := 0
	for _, in := range infos {
		if signedByUpstream(in.Signatures, upstream) {
			skipped++
			continue
		}
		byHash[filepath.Base(in.Path)[:32]] = in
	}
	missing, err := missingPaths(c, cache, byHash)
	if err != nil {
		return err
	}
	todo := toUpload(byHash, missing)
	if len(todo) == 0 {
		fmt.Printf("✅ Nothing to push: all %d paths are already in %q (%d skipped as upstream)\n", len(byHash), cache, skipped)
		return nil
	}
	fmt.Printf("⚙️ Pushing %d paths to %q (%d already there, %d skipped as upstream)...\n", len(todo), cache, len(byHash)-len(todo), skipped)
	return uploadAll(c, cache, todo, o.jobs)
}

// toUpload is the paths the server says it lacks, largest first (like nix
// copy, so the long uploads start early). Only hashes we asked about count,
// each once: a server answering others must not make us upload an empty
// path info.
func toUpload(byHash map[string]pathInfo, missing []string) []pathInfo {
	todo := make([]pathInfo, 0, min(len(missing), len(byHash)))
	queued := map[string]bool{}
	for _, h := range missing {
		if in, ok := byHash[h]; ok && !queued[h] {
			queued[h] = true
			todo = append(todo, in)
		}
	}
	slices.SortFunc(todo, func(a, b pathInfo) int { return cmp.Compare(b.NarSize, a.NarSize) })
	return todo
}

func signedByUpstream(sigs, upstream []string) bool {
	for _, s := range sigs {
		name, _, _ := strings.Cut(s, ":")
		if slices.Contains(upstream, name) {
			return true
		}
	}
	return false
}

func missingPaths(c *apiClient, cache string, byHash map[string]pathInfo) ([]string, error) {
	hashes := make([]string, 0, len(byHash))
	for h := range byHash {
		hashes = append(hashes, h)
	}
	var missing []string
	for len(hashes) > 0 {
		n := min(len(hashes), 5000)
		var res v1.GetMissingPathsResponse
		if err := c.doJSON("POST", "_api/v1/get-missing-paths", v1.GetMissingPathsRequest{Cache: cache, StorePathHashes: hashes[:n]}, &res); err != nil {
			return nil, err
		}
		missing = append(missing, res.MissingPaths...)
		hashes = hashes[n:]
	}
	return missing, nil
}

// uploadAll runs jobs workers, each retrying transient failures with backoff.
func uploadAll(c *apiClient, cache string, todo []pathInfo, jobs int) error {
	start := time.Now()
	var total int64
	for _, in := range todo {
		total += in.NarSize
	}
	prog := newProgress(total)
	var bytesSent, uploaded, deduped, failed atomic.Int64
	work := make(chan pathInfo)
	var wg sync.WaitGroup
	for range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for in := range work {
				res, err := uploadWithRetry(c, cache, in, prog)
				prog.end(in, res, err)
				switch {
				case err != nil:
					failed.Add(1)
				case res.Kind == v1.UploadKindDeduplicated:
					deduped.Add(1)
					bytesSent.Add(in.NarSize)
				default:
					uploaded.Add(1)
					bytesSent.Add(in.NarSize)
				}
			}
		}()
	}
	for _, in := range todo {
		work <- in
	}
	close(work)
	wg.Wait()
	prog.wait()
	secs := time.Since(start).Seconds()
	fmt.Printf("Pushed %d paths (%d uploaded, %d deduplicated), %s in %.1f s (%.1f MiB/s)\n",
		uploaded.Load()+deduped.Load(), uploaded.Load(), deduped.Load(), mib(bytesSent.Load()), secs, float64(bytesSent.Load())/(1<<20)/max(secs, 0.001))
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("%d path(s) failed to upload", n)
	}
	return nil
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func uploadWithRetry(c *apiClient, cache string, in pathInfo, prog progress) (v1.UploadPathResult, error) {
	var err error
	for attempt := range 4 {
		if attempt > 0 {
			time.Sleep(time.Duration(1<<attempt) * 250 * time.Millisecond)
		}
		var res v1.UploadPathResult
		if res, err = uploadOne(c, cache, in, prog.begin(in)); err == nil {
			return res, nil
		}
		var ae *apiError
		if errors.As(err, &ae) && !ae.transient() {
			return res, err
		}
	}
	return v1.UploadPathResult{}, err
}

// uploadInfo is upload-path's description of in, as Attic's client writes it:
// references and deriver as base names, the NAR hash as "sha256:<hex>"
// (atticd refuses Nix's SRI form, "sha256-<base64>").
func uploadInfo(cache string, in pathInfo) v1.UploadPathNarInfo {
	refs := make([]string, len(in.References))
	for i, r := range in.References {
		refs[i] = filepath.Base(r)
	}
	info := v1.UploadPathNarInfo{Cache: cache, StorePathHash: filepath.Base(in.Path)[:32], StorePath: in.Path,
		References: refs, Sigs: in.Signatures, NarHash: in.NarHash.Hex(), NarSize: in.NarSize}
	if info.Sigs == nil {
		info.Sigs = []string{}
	}
	if in.Deriver != "" {
		d := filepath.Base(in.Deriver)
		info.Deriver = &d
	}
	if in.CA != "" {
		info.CA = &in.CA
	}
	return info
}

// uploadOne streams `nix-store --dump` into upload-path.
func uploadOne(c *apiClient, cache string, in pathInfo, wrap func(io.Reader) io.Reader) (v1.UploadPathResult, error) {
	j, err := json.Marshal(uploadInfo(cache, in))
	if err != nil {
		return v1.UploadPathResult{}, err
	}
	dump := exec.Command("nix-store", "--dump", in.Path)
	nar, err := dump.StdoutPipe()
	if err != nil {
		return v1.UploadPathResult{}, err
	}
	if err := dump.Start(); err != nil {
		return v1.UploadPathResult{}, err
	}
	var body = wrap(nar)
	hdr := map[string]string{}
	if len(j) < 4096 {
		hdr[v1.HeaderNarInfo] = string(j)
	} else {
		hdr[v1.HeaderNarInfoPreamble] = fmt.Sprint(len(j))
		body = io.MultiReader(bytes.NewReader(j), body)
	}
	var res v1.UploadPathResult
	err = c.do("PUT", "_api/v1/upload-path", body, hdr, &res)
	_, _ = io.Copy(io.Discard, nar)
	if werr := dump.Wait(); err == nil && werr != nil {
		err = fmt.Errorf("nix-store --dump: %w", werr)
	}
	return res, err
}
