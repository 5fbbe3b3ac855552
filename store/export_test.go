package store

import (
	"encoding/json"
	"fmt"
)

// Get decodes bucket/key into v and reports whether it was there: the
// tests' reader of one record (the plugin reads whole buckets, ForEach).
func (t *Tx) Get(bucket, key string, v any) (bool, error) {
	b := t.tx.Bucket([]byte(bucket))
	if b == nil {
		return false, nil
	}
	raw := b.Get([]byte(key))
	if raw == nil {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return true, fmt.Errorf("decode %s/%s: %w: %w", bucket, key, ErrCorrupt, err)
	}
	return true, nil
}
