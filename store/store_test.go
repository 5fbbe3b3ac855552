package store

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
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
