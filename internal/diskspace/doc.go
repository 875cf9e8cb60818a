// Package diskspace reports how much space is free on the filesystem that
// holds a directory (statfs: the blocks available to unprivileged users,
// not those reserved for root), and a Floor that refuses work below a
// minimum. Garret refuses pushes below the data dir's floor, so the space
// left stays for the catalog, which must always be able to write.
package diskspace
