package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"

	bolterrors "go.etcd.io/bbolt/errors"
)

type record struct {
	Name string
	N    int
}

func TestRoundTripSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *Tx) error {
		if err := tx.Put("networks", "a", record{"a", 1}); err != nil {
			return err
		}
		return tx.Put("networks", "b", record{"b", 2})
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var got []record
	err = db.View(func(tx *Tx) error {
		return tx.ForEach("networks", func(_ string, decode func(any) error) error {
			var r record
			if err := decode(&r); err != nil {
				return err
			}
			got = append(got, r)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != (record{"a", 1}) || got[1] != (record{"b", 2}) {
		t.Fatalf("after reopen got %v", got)
	}
}

func TestFailedUpdateWritesNothing(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	boom := errors.New("boom")
	err = db.Update(func(tx *Tx) error {
		if err := tx.Put("endpoints", "e1", record{"e1", 1}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update error = %v, want boom", err)
	}
	_ = db.View(func(tx *Tx) error {
		var r record
		found, err := tx.Get("endpoints", "e1", &r)
		if found || err != nil {
			t.Errorf("rolled-back record found=%v err=%v", found, err)
		}
		return nil
	})
}

func TestDeleteIsIdempotent(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i := 0; i < 2; i++ {
		if err := db.Update(func(tx *Tx) error { return tx.Delete("endpoints", "missing") }); err != nil {
			t.Fatalf("delete #%d: %v", i+1, err)
		}
	}
}

func TestCorruptFileIsReportedAndKept(t *testing.T) {
	tests := map[string][]byte{
		"garbage":   []byte("this is not a bbolt file"),
		"zero page": make([]byte, 64*1024),
	}
	for name, content := range tests {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			if err := os.WriteFile(path, content, 0o600); err != nil {
				t.Fatal(err)
			}
			db, err := Open(path)
			if err == nil {
				db.Close()
				t.Fatal("Open of a corrupt file succeeded")
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("error %v does not wrap ErrCorrupt", err)
			}
			after, _ := os.ReadFile(path)
			if string(after) != string(content) {
				t.Error("corrupt state file was modified")
			}
		})
	}
}

func TestCorruptRecordNamesItself(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_ = db.Update(func(tx *Tx) error { return tx.Put("pools", "p1", "a string, not a record") })
	err = db.View(func(tx *Tx) error {
		var r record
		_, err := tx.Get("pools", "p1", &r)
		return err
	})
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("error = %v, want ErrCorrupt naming pools/p1", err)
	}
}

// TestConcurrentWrites: writes queued together commit together, each
// answered with its own result: a failing one lands nothing and takes no
// other down, and queued order is commit order.
func TestConcurrentWrites(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	var waits []func() error
	for i := range 50 {
		i := i
		waits = append(waits, db.Write(func(tx *Tx) error {
			if err := tx.Put("endpoints", fmt.Sprint(i), record{"first", i}); err != nil {
				return err
			}
			if i == 7 {
				return boom
			}
			return tx.Put("endpoints", "last", record{"last", i})
		}))
	}
	for i, wait := range waits {
		if err := wait(); (i == 7) != errors.Is(err, boom) {
			t.Errorf("write %d: %v", i, err)
		}
	}
	var n int
	var last record
	_ = db.View(func(tx *Tx) error {
		_ = tx.ForEach("endpoints", func(string, func(any) error) error { n++; return nil })
		_, err := tx.Get("endpoints", "last", &last)
		return err
	})
	if n != 50 || last.N != 49 { // 49 records and "last"; 7 wrote nothing
		t.Errorf("%d records, last = %+v; want 50 and the 50th write's", n, last)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(*Tx) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("write after Close: %v, want ErrClosed", err)
	}
}

// BenchmarkConcurrentUpdates is callers writing one record each at a time
// (50 per CPU), against one per CPU in the same run: the group commit's
// gain.
func BenchmarkConcurrentUpdates(b *testing.B) {
	for _, callers := range []int{1, 50} {
		b.Run(fmt.Sprintf("callers-per-cpu=%d", callers), func(b *testing.B) {
			db, err := Open(filepath.Join(b.TempDir(), "state.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			var next atomic.Int64
			b.SetParallelism(callers)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					key := fmt.Sprint(next.Add(1))
					if err := db.Update(func(tx *Tx) error { return tx.Put("endpoints", key, record{key, 1}) }); err != nil {
						b.Error(err)
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
		})
	}
}

func TestCloseTwice(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	_ = db.Close() // bbolt says the file is closed; nothing panics
}

func TestIsError(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"none", nil, false},
		{"user error", errors.New(`option "mtu": not a number`), false},
		{"corrupt state", fmt.Errorf("load: %w", ErrCorrupt), true},
		{"bbolt", fmt.Errorf("put endpoints/x: %w", bolterrors.ErrDatabaseNotOpen), true},
		{"file", fmt.Errorf("open: %w", &os.PathError{Op: "open", Path: "/state/x", Err: syscall.EACCES}), true},
		{"errno", fmt.Errorf("create link: %w", syscall.EOPNOTSUPP), false},
	}
	for _, tt := range tests {
		if got := IsError(tt.err); got != tt.want {
			t.Errorf("%s: IsError(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}
