// Package store keeps the plugin's state (networks, endpoints, pools,
// allocations) in one bbolt file in the plugin's propagated mount, because
// Docker replays nothing to a remote plugin after a restart.
//
// Records are JSON values in named buckets. Each Docker call's writes are
// one unit that lands whole or not at all, so a crash between two calls
// never leaves a half-written record; a call answers Docker only once its
// writes are on disk.
//
// Docker starts containers in parallel (compose up, service scale), and a
// commit is a disk sync: writes queued while one commit runs go to disk
// together in the next (group commit), so 50 callers share a few syncs
// instead of waiting for 50 one after another. A lone write is committed at
// once, never held back to wait for company.
package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// ErrCorrupt marks a state file that exists but cannot be read as a store.
// The plugin refuses to start on it rather than replace it, so an operator
// can inspect or restore it.
var ErrCorrupt = errors.New("state file is corrupt or unreadable")

// IsError tells whether err came from the store: ErrCorrupt, one of
// bbolt's errors, or a file error (the state file's, wrapped in
// *os.PathError), for counting errors by source.
func IsError(err error) bool {
	if err == nil {
		return false
	}
	var pathErr *os.PathError
	if errors.Is(err, ErrCorrupt) || errors.As(err, &pathErr) {
		return true
	}
	for _, e := range []error{
		bolterrors.ErrDatabaseNotOpen, bolterrors.ErrInvalid, bolterrors.ErrChecksum, bolterrors.ErrTimeout,
		bolterrors.ErrTxClosed, bolterrors.ErrDatabaseReadOnly, bolterrors.ErrTxNotWritable,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// DB is an open state file.
type DB struct {
	bolt *bolt.DB
	path string

	mu      sync.Mutex
	pending []*write      // queued for the next commit, in order
	wake    chan struct{} // capacity 1: a commit is due
	stop    chan struct{} // closed by Close
	done    chan struct{} // closed when the committer has ended
}

// write is one caller's unit of writes.
type write struct {
	fn     func(*Tx) error
	result chan error // capacity 1
}

// Open opens (or creates) the state file at path. A file that is not a bbolt
// database is reported with ErrCorrupt and left untouched.
func Open(path string) (*DB, error) {
	if err := checkReadable(path); err != nil {
		return nil, err
	}
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("open state file %s: locked by another process: %w", path, err)
		}
		return nil, fmt.Errorf("open state file %s: %w: %w", path, ErrCorrupt, err)
	}
	db := &DB{bolt: b, path: path, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	if err := b.View(checkConsistency); err != nil {
		_ = b.Close()
		return nil, fmt.Errorf("open state file %s: %w: %w", path, ErrCorrupt, err)
	}
	go db.commitLoop()
	return db, nil
}

// checkConsistency walks every page once at open, so a damaged file is
// reported at start-up rather than in the middle of a Docker call.
func checkConsistency(tx *bolt.Tx) error {
	var first error
	for err := range tx.Check() {
		if first == nil {
			first = err
		}
	}
	return first
}

// checkReadable turns an existing but unreadable file into a clear error
// before bbolt sees it (bbolt may panic or mmap garbage on some truncations).
func checkReadable(path string) error {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stat state file %s: %w", path, err)
	}
	if fi.IsDir() {
		return fmt.Errorf("state file %s is a directory: %w", path, ErrCorrupt)
	}
	if fi.Size() > 0 && fi.Size() < 4096 {
		return fmt.Errorf("state file %s is truncated (%d bytes): %w", path, fi.Size(), ErrCorrupt)
	}
	return nil
}

// Path is the file the store lives in.
func (db *DB) Path() string { return db.path }

// Close commits what is queued and closes the file.
func (db *DB) Close() error {
	// Under mu: a Write either queued before (and is committed now) or
	// sees the store closed.
	db.mu.Lock()
	select {
	case <-db.stop: // closed already
	default:
		close(db.stop)
	}
	db.mu.Unlock()
	<-db.done
	return db.bolt.Close()
}

// ErrClosed is the answer to a write queued after Close.
var ErrClosed = errors.New("state file closed")

// Write queues fn and returns a function that waits until fn's writes are
// on disk (or failed) and says which. fn runs in a transaction shared with
// other callers' writes: it must only touch the Tx, and may run twice (if
// another write of its commit fails, each is tried on its own). Writes
// commit in the order they were queued, so a caller that queues under its
// own lock and waits after letting go keeps its order without holding the
// lock through a disk sync.
func (db *DB) Write(fn func(*Tx) error) (wait func() error) {
	w := &write{fn: fn, result: make(chan error, 1)}
	db.mu.Lock()
	select {
	case <-db.stop:
		db.mu.Unlock()
		return func() error { return ErrClosed }
	default:
	}
	db.pending = append(db.pending, w)
	db.mu.Unlock()
	select {
	case db.wake <- struct{}{}:
	default: // a commit is already due and will take this write
	}
	return func() error { return <-w.result }
}

// Update runs fn in a read-write transaction (Write) and returns once its
// writes are on disk: all of fn's writes land, or none do.
func (db *DB) Update(fn func(*Tx) error) error { return db.Write(fn)() }

// commitLoop commits what is queued whenever Write wakes it, until Close.
func (db *DB) commitLoop() {
	defer close(db.done)
	for {
		select {
		case <-db.wake:
		case <-db.stop:
			db.commitPending() // what was queued before Close
			return
		}
		db.commitPending()
	}
}

func (db *DB) commitPending() {
	db.mu.Lock()
	batch := db.pending
	db.pending = nil
	db.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	failed := -1
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		for i, w := range batch {
			if err := w.fn(&Tx{tx: tx}); err != nil {
				failed = i
				return err
			}
		}
		return nil
	})
	if failed < 0 || len(batch) == 1 {
		for _, w := range batch {
			w.result <- err
		}
		return
	}
	// One write failed and took the others' down with it: each on its own.
	for _, w := range batch {
		w.result <- db.bolt.Update(func(tx *bolt.Tx) error { return w.fn(&Tx{tx: tx}) })
	}
}

// View runs fn in a read-only transaction.
func (db *DB) View(fn func(*Tx) error) error {
	return db.bolt.View(func(tx *bolt.Tx) error { return fn(&Tx{tx: tx}) })
}

// Tx is one transaction.
type Tx struct {
	tx *bolt.Tx
}

// Put stores v as JSON under bucket/key, creating the bucket on first use.
func (t *Tx) Put(bucket, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s/%s: %w", bucket, key, err)
	}
	b, err := t.tx.CreateBucketIfNotExists([]byte(bucket))
	if err != nil {
		return fmt.Errorf("create bucket %s: %w", bucket, err)
	}
	if err := b.Put([]byte(key), raw); err != nil {
		return fmt.Errorf("put %s/%s: %w", bucket, key, err)
	}
	return nil
}

// Delete removes bucket/key; a missing key is not an error, so repeated
// deletes (Docker repeats Leave and DeleteEndpoint) succeed.
func (t *Tx) Delete(bucket, key string) error {
	b := t.tx.Bucket([]byte(bucket))
	if b == nil {
		return nil
	}
	if err := b.Delete([]byte(key)); err != nil {
		return fmt.Errorf("delete %s/%s: %w", bucket, key, err)
	}
	return nil
}

// ForEach calls fn with every key of bucket and a decoder for its value.
// Decoding is left to fn so one bad record names itself in the error.
func (t *Tx) ForEach(bucket string, fn func(key string, decode func(v any) error) error) error {
	b := t.tx.Bucket([]byte(bucket))
	if b == nil {
		return nil
	}
	return b.ForEach(func(k, raw []byte) error {
		key := string(k)
		return fn(key, func(v any) error {
			if err := json.Unmarshal(raw, v); err != nil {
				return fmt.Errorf("decode %s/%s: %w: %w", bucket, key, ErrCorrupt, err)
			}
			return nil
		})
	})
}
