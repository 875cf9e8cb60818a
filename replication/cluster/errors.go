package cluster

import (
	"errors"
	"fmt"
)

var (
	// ErrNoSuchNode: neither Raft nor gossip knows the node named (404).
	ErrNoSuchNode = errors.New("cluster: no such node")
	// ErrRefused: the request cannot be carried out as asked (400); the
	// message tells the admin what to do instead.
	ErrRefused = errors.New("cluster: request refused")
)

// Error is an admin request the controller refuses: Kind is ErrNoSuchNode
// or ErrRefused, Message the whole explanation for the admin.
type Error struct {
	Kind    error
	Message string
}

func (e *Error) Error() string { return e.Message }
func (e *Error) Unwrap() error { return e.Kind }

func refused(format string, args ...any) error {
	return &Error{Kind: ErrRefused, Message: fmt.Sprintf(format, args...)}
}

func noSuchNode(format string, args ...any) error {
	return &Error{Kind: ErrNoSuchNode, Message: fmt.Sprintf(format, args...)}
}
