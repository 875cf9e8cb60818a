// Package dialurl checks that a URL is one a client elsewhere could dial
// and append a cache name to: a node's public API URL, which garret use
// writes into users' nix.conf.
package dialurl

import (
	"errors"
	"net"
	"net/url"
)

// Check returns why u is not an http(s) URL with a host a client could
// dial (an unspecified address such as 0.0.0.0 or :: is none) and without a
// query or fragment (a cache name cannot follow them); nil if it is.
func Check(u string) error {
	p, err := url.Parse(u)
	switch {
	case err != nil:
		return err
	case p.Scheme != "http" && p.Scheme != "https", p.Hostname() == "":
		return errors.New("not an http(s) URL with a host")
	case p.RawQuery != "" || p.Fragment != "" || p.ForceQuery:
		return errors.New("a cache name cannot follow a query or fragment")
	case net.ParseIP(p.Hostname()).IsUnspecified():
		return errors.New(p.Hostname() + " is no address a client can dial")
	}
	return nil
}
