package diskspace

import (
	"errors"
	"testing"
)

func TestStat_TempDir(t *testing.T) {
	u, err := Stat(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if u.Total == 0 || u.Free > u.Total {
		t.Fatalf("usage %+v", u)
	}
	if _, err := Stat(t.TempDir() + "/missing"); err == nil {
		t.Fatal("statfs of a missing directory succeeded")
	}
}

func TestFloor_Check(t *testing.T) {
	free := uint64(10 << 20)
	calls := 0
	f := &Floor{Dir: "/data", Min: 1 << 30, Stat: func(string) (Usage, error) {
		calls++
		return Usage{Free: free, Total: 100 << 30}, nil
	}}
	var low *LowError
	if err := f.Check(); !errors.As(err, &low) || low.Free != free || low.Min != 1<<30 {
		t.Fatalf("10 MiB free, floor 1 GiB: %v", err)
	}
	if got := f.Check().Error(); got != "/data has 10.0 MiB free, below the minimum of 1.0 GiB" {
		t.Fatalf("message %q", got)
	}
	free = 2 << 30
	if err := f.Check(); err != nil {
		t.Fatalf("2 GiB free, floor 1 GiB: %v", err)
	}
	f.Min, calls = 0, 0
	free = 0
	if err := f.Check(); err != nil || calls != 0 {
		t.Fatalf("floor 0: %v after %d statfs calls; want nil without any", err, calls)
	}
	broken := &Floor{Dir: "/x", Min: 1, Stat: func(string) (Usage, error) { return Usage{}, errors.New("EIO") }}
	if err := broken.Check(); err == nil || errors.As(err, &low) {
		t.Fatalf("statfs failure: %v", err)
	}
}
