package cluster

import (
	"errors"
	"testing"
)

func TestWrongSecretRecognised(t *testing.T) {
	for msg, want := range map[string]bool{
		"1 error occurred:\n\t* failed to join 127.0.0.1:7990: no installed keys could decrypt the message": true,
		"Remote state is encrypted and encryption is not configured":                                        true,
		"Encryption is configured but remote state is not encrypted":                                        true,
		"dial tcp 10.0.0.1:7946: connect: connection refused":                                               false,
	} {
		if got := wrongSecret(errors.New(msg).Error()); got != want {
			t.Errorf("wrongSecret(%q) = %v", msg, got)
		}
	}
}
