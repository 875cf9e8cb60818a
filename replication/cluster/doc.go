// Package cluster is the cluster controller: it runs gossip (membership),
// keeps the Raft configuration in line with it (voter placement across
// regions on the leader, dead voters replaced, lost members rejoined from
// data-dir/members.json), answers the cluster status, and carries out
// admins' join, leave and remove requests. It is the only code that changes
// Raft membership, through the catalog's narrow methods; refusals are
// *Error values (ErrNoSuchNode, ErrRefused) that the API maps to HTTP.
package cluster
