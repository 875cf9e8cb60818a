package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// defaultHealthURL is a node's /readyz at the listen address of the images
// and units in deploy/.
const defaultHealthURL = "http://127.0.0.1:8080/readyz"

// healthcheckCmd GETs a node's /readyz and exits 0 on a 2xx answer, 1
// otherwise: the container image has no shell, curl or wget, so compose's
// (and any orchestrator's) exec health check runs garretd itself.
func healthcheckCmd() *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "healthcheck [URL]",
		Short: "GET a node's /readyz (default " + defaultHealthURL + ") and exit 0 if it answers 2xx, 1 if not",
		Long: `healthcheck asks a node whether it is ready, for container health checks (the image has no curl):
it exits 0 when the URL answers 2xx and 1 otherwise, printing why. A URL without a path gets /readyz;
ask /healthz for liveness only (the process answers HTTP).`,
		Example: `  garretd healthcheck
  garretd healthcheck http://127.0.0.1:8081
  garretd healthcheck --timeout 2s http://[::1]:8080/healthz`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			target := defaultHealthURL
			if len(args) == 1 {
				target = args[0]
			}
			body, err := probe(cmd.Context(), target, timeout)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), body)
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "give up (exit 1) after this long")
	return cmd
}

// probe GETs target (with /readyz added to a URL without a path) and returns
// the first line of a 2xx body, or an error saying what answered instead.
func probe(ctx context.Context, target string, timeout time.Duration) (string, error) {
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("healthcheck: %q is not an http(s) URL", target)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/readyz"
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", fmt.Errorf("healthcheck: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("healthcheck: %s: %w", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	text := strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])
	if resp.StatusCode/100 != 2 {
		return "", fmt.Errorf("healthcheck: %s: %s %s", u, resp.Status, text)
	}
	return u.String() + ": " + text, nil
}
