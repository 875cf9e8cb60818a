package serverconfig

import (
	"fmt"

	"github.com/garret-cache/garret/internal/dialurl"
)

// checkAPIURL refuses a [cluster] api-url that users could not dial: the
// other nodes tell it to clients (garret use writes it into nix.conf).
func checkAPIURL(u string) error {
	if err := dialurl.Check(u); err != nil {
		return fmt.Errorf("[cluster] api-url = %q: %v (want this node's public URL, such as \"https://us-1.cache.example.net\")", u, err)
	}
	return nil
}
