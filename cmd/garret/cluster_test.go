package main

import (
	"bytes"
	"strings"
	"testing"

	v1 "github.com/garret-cache/garret/api/v1"
)

func TestPrintStatus(t *testing.T) {
	var b bytes.Buffer
	printStatus(&b, v1.ClusterStatus{Node: "eu-1", AppliedIndex: 7, CommitIndex: 7, Nodes: []v1.ClusterNode{
		{Name: "eu-1", Region: "eu", Role: "voter", Leader: true, APIURL: "http://a/"},
		{Name: "us-1", Region: "us", Role: "nonvoter", RTTMs: 151.2},
	}})
	out := b.String()
	for _, want := range []string{"applied 7 of 7", "eu-1", "voter", "*", "151.2 ms", "nonvoter"} {
		if !strings.Contains(out, want) {
			t.Fatalf("status output lacks %q:\n%s", want, out)
		}
	}
}
