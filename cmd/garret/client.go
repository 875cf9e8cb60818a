package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	v1 "github.com/garret-cache/garret/api/v1"
)

// apiClient calls an Attic-compatible server.
type apiClient struct {
	endpoint string // ends with "/"
	token    string
	http     *http.Client
}

func newClient(srv serverEntry) (*apiClient, error) {
	tok, err := srv.token()
	if err != nil {
		return nil, err
	}
	ep := srv.Endpoint
	if !strings.HasSuffix(ep, "/") {
		ep += "/"
	}
	return &apiClient{endpoint: ep, token: tok, http: &http.Client{Timeout: 0, Transport: &http.Transport{
		Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: 32, ResponseHeaderTimeout: 10 * time.Minute,
	}}}, nil
}

// waitForAnswer lifts the response header timeout, for requests the server
// answers only when the work ends (a scrub, a garbage collection pass).
func (c *apiClient) waitForAnswer() {
	if t, ok := c.http.Transport.(*http.Transport); ok {
		t = t.Clone()
		t.ResponseHeaderTimeout = 0
		c.http = &http.Client{Transport: t}
	}
}

// apiError is a non-2xx answer, printed as "error: message" like attic does.
type apiError struct {
	status int
	body   v1.ErrorResponse
}

func (e *apiError) Error() string {
	if e.body.Error != "" {
		return fmt.Sprintf("%s: %s", e.body.Error, e.body.Message)
	}
	return fmt.Sprintf("HTTP %d", e.status)
}

// transient reports whether retrying may help.
func (e *apiError) transient() bool { return e.status >= 500 || e.status == 429 }

func (c *apiClient) do(method, path string, body io.Reader, hdr map[string]string, out any) error {
	req, err := http.NewRequest(method, c.endpoint+path, body)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "bearer "+c.token)
	}
	req.Header.Set("User-Agent", "garret-client")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		e := &apiError{status: resp.StatusCode}
		_ = json.Unmarshal(data, &e.body)
		return e
	}
	if out != nil && len(data) > 0 {
		return json.Unmarshal(data, out)
	}
	return nil
}

func (c *apiClient) doJSON(method, path string, in, out any) error {
	var body io.Reader
	hdr := map[string]string{}
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
		hdr["Content-Type"] = "application/json"
	}
	return c.do(method, path, body, hdr, out)
}

func (c *apiClient) cacheConfig(cache string) (*v1.CacheConfig, error) {
	var cc v1.CacheConfig
	return &cc, c.doJSON("GET", "_api/v1/cache-config/"+cache, nil, &cc)
}
