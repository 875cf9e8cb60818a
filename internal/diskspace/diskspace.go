package diskspace

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Usage is a filesystem's size and the bytes an unprivileged process can
// still write to it.
type Usage struct{ Free, Total uint64 }

// Stat returns the usage of the filesystem holding dir.
func Stat(dir string) (Usage, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return Usage{}, fmt.Errorf("diskspace: statfs %s: %w", dir, err)
	}
	bs := uint64(st.Bsize)
	return Usage{Free: st.Bavail * bs, Total: st.Blocks * bs}, nil
}

// Floor refuses work when the filesystem holding Dir has less than Min
// bytes free.
type Floor struct {
	Dir string
	Min uint64 // 0: never refuses
	// Stat is Stat unless a test replaces it.
	Stat func(dir string) (Usage, error)
}

// LowError is a Floor's refusal.
type LowError struct {
	Dir       string
	Free, Min uint64
}

func (e *LowError) Error() string {
	return fmt.Sprintf("%s has %s free, below the minimum of %s", e.Dir, Bytes(e.Free), Bytes(e.Min))
}

// Check returns a *LowError when the free space is below the floor, the
// error of statfs if it failed, and nil otherwise (always nil when Min is 0,
// without calling statfs).
func (f *Floor) Check() error {
	if f == nil || f.Min == 0 {
		return nil
	}
	stat := f.Stat
	if stat == nil {
		stat = Stat
	}
	u, err := stat(f.Dir)
	if err != nil {
		return err
	}
	if u.Free < f.Min {
		return &LowError{Dir: f.Dir, Free: u.Free, Min: f.Min}
	}
	return nil
}

// Bytes formats n in the largest binary unit that keeps it ≥ 1, with one
// decimal: "1.0 GiB", "512.0 MiB", "17 B".
func Bytes(n uint64) string {
	const units = "KMGTPE"
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n)/1024, 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, units[i])
}
