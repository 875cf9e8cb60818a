// Package grafana holds Garret's Grafana dashboard (garret.json, embedded
// here as Dashboard) and its test: every metric a panel queries must be
// one a running node exports. See README.md in this folder for importing
// it and the Prometheus scrape config.
package grafana

import _ "embed"

// Dashboard is garret.json, the dashboard as Grafana imports it.
//
//go:embed garret.json
var Dashboard []byte
