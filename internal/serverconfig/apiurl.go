package serverconfig

import (
	"fmt"
	"net"
	"net/url"
)

// checkAPIURL refuses a [cluster] api-url that users could not dial: the
// other nodes tell it to clients (garret use writes it into nix.conf).
func checkAPIURL(u string) error {
	var why string
	p, err := url.Parse(u)
	switch {
	case err != nil:
		why = err.Error()
	case p.Scheme != "http" && p.Scheme != "https", p.Hostname() == "":
		why = "not an http(s) URL with a host"
	case p.RawQuery != "" || p.Fragment != "":
		why = "a cache name cannot follow a query or fragment"
	case net.ParseIP(p.Hostname()).IsUnspecified():
		why = p.Hostname() + " is no address a client can dial"
	default:
		return nil
	}
	return fmt.Errorf("[cluster] api-url = %q: %s (want this node's public URL, such as \"https://us-1.cache.example.net\")", u, why)
}
