package snapshot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/atomicfile"
	"github.com/hako-runtime/hako/internal/flock"
)

// Store keeps the snapshot records of one snapshotter root in a single
// JSON file, rewritten atomically (temp file, fsync, rename, fsync of the
// directory) under an exclusive flock, so several hako processes (the CLI
// and the daemon) can share a root.
//
// A file rather than bbolt: the table is small (one record per layer and
// container, a few hundred bytes each), is always read and written whole,
// and this keeps bbolt's start-up cost out of every binary that links the
// snapshotter. Snapshotters store their data under the ID of a record,
// never under the key, so keys can be any string.
type Store struct {
	dir string
	mu  sync.Mutex // flock is per open file; this orders goroutines
}

// Record is what the store keeps for one snapshot.
type Record struct {
	ID      string            `json:"id"`
	Kind    Kind              `json:"kind"`
	Parent  string            `json:"parent,omitempty"`
	Labels  map[string]string `json:"labels,omitempty"`
	Created time.Time         `json:"created"`
	Updated time.Time         `json:"updated"`
}

// Table is the whole metadata, handed to View and Update callbacks.
type Table struct {
	Version   int                `json:"version"`
	NextID    uint64             `json:"nextID"`
	Snapshots map[string]*Record `json:"snapshots"`
}

const (
	metadataFile = "metadata.json"
	lockFile     = "metadata.lock"
	tableVersion = 1
)

// OpenStore opens (creating if needed) the store kept in dir.
func OpenStore(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create snapshot metadata dir: %w", err)
	}
	return &Store{dir: dir}, nil
}

// View calls fn with the current table under a shared lock. fn must not
// keep or change the table.
func (s *Store) View(ctx context.Context, fn func(*Table) error) error {
	unlock, err := s.lock(ctx, unix.LOCK_SH)
	if err != nil {
		return err
	}
	defer unlock()
	t, err := s.read()
	if err != nil {
		return err
	}
	return fn(t)
}

// Update calls fn with the current table under an exclusive lock and
// writes the table back if fn returns nil. Filesystem work that must be
// atomic with the metadata (creating a snapshot's directory) belongs in
// fn; fn undoes its own work when it fails, and the caller undoes it when
// Update fails after fn succeeded.
func (s *Store) Update(ctx context.Context, fn func(*Table) error) error {
	unlock, err := s.lock(ctx, unix.LOCK_EX)
	if err != nil {
		return err
	}
	defer unlock()
	t, err := s.read()
	if err != nil {
		return err
	}
	if err := fn(t); err != nil {
		return err
	}
	return s.write(t)
}

// lock takes the flock (see package flock) and the in-process mutex.
func (s *Store) lock(ctx context.Context, how int) (func(), error) {
	s.mu.Lock()
	unlock, err := flock.Lock(ctx, filepath.Join(s.dir, lockFile), how)
	if err != nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("lock snapshot metadata: %w", err)
	}
	return func() {
		unlock()
		s.mu.Unlock()
	}, nil
}

func (s *Store) read() (*Table, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, metadataFile))
	if errors.Is(err, os.ErrNotExist) {
		return &Table{Version: tableVersion, NextID: 1, Snapshots: map[string]*Record{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read snapshot metadata: %w", err)
	}
	var t Table
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("parse snapshot metadata %s: %w", filepath.Join(s.dir, metadataFile), err)
	}
	if t.Version != tableVersion {
		return nil, fmt.Errorf("snapshot metadata version %d, this hako reads %d", t.Version, tableVersion)
	}
	if t.Snapshots == nil {
		t.Snapshots = map[string]*Record{}
	}
	return &t, nil
}

func (s *Store) write(t *Table) error {
	b, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("encode snapshot metadata: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(s.dir, metadataFile), b, 0o600); err != nil {
		return fmt.Errorf("snapshot metadata: %w", err)
	}
	return nil
}

// Get returns the record of key.
func (t *Table) Get(key string) (*Record, error) {
	r, ok := t.Snapshots[key]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, key)
	}
	return r, nil
}

// Info returns the public view of key's record.
func (t *Table) Info(key string) (Info, error) {
	r, err := t.Get(key)
	if err != nil {
		return Info{}, err
	}
	labels := make(map[string]string, len(r.Labels))
	for k, v := range r.Labels {
		labels[k] = v
	}
	return Info{Kind: r.Kind, Name: key, Parent: r.Parent, Labels: labels, Created: r.Created, Updated: r.Updated}, nil
}

// Create adds a view or active snapshot key on parent, which must be
// committed, and gives it a fresh ID.
func (t *Table) Create(kind Kind, key, parent string, opts []Opt) (*Record, error) {
	if key == "" {
		return nil, fmt.Errorf("%w: empty key", ErrInvalidArgument)
	}
	if kind != KindActive && kind != KindView {
		return nil, fmt.Errorf("%w: create a %s snapshot", ErrInvalidArgument, kind)
	}
	if _, ok := t.Snapshots[key]; ok {
		return nil, fmt.Errorf("%w: %q", ErrAlreadyExists, key)
	}
	if parent != "" {
		p, err := t.Get(parent)
		if err != nil {
			return nil, fmt.Errorf("parent: %w", err)
		}
		if p.Kind != KindCommitted {
			return nil, fmt.Errorf("%w: parent %q is %s, not committed", ErrFailedPrecondition, parent, p.Kind)
		}
	}
	info := Info{}
	for _, o := range opts {
		if err := o(&info); err != nil {
			return nil, err
		}
	}
	now := time.Now().UTC()
	r := &Record{ID: strconv.FormatUint(t.NextID, 10), Kind: kind, Parent: parent, Labels: info.Labels, Created: now, Updated: now}
	t.NextID++
	t.Snapshots[key] = r
	return r, nil
}

// Commit moves the active snapshot key to the committed snapshot name,
// keeping its ID and thus its data.
func (t *Table) Commit(name, key string, opts []Opt) (*Record, error) {
	r, err := t.Get(key)
	if err != nil {
		return nil, err
	}
	if r.Kind != KindActive {
		return nil, fmt.Errorf("%w: commit %q: it is %s, not active", ErrFailedPrecondition, key, r.Kind)
	}
	if name == "" {
		return nil, fmt.Errorf("%w: empty name", ErrInvalidArgument)
	}
	if _, ok := t.Snapshots[name]; ok {
		return nil, fmt.Errorf("%w: %q", ErrAlreadyExists, name)
	}
	info := Info{Labels: r.Labels}
	for _, o := range opts {
		if err := o(&info); err != nil {
			return nil, err
		}
	}
	delete(t.Snapshots, key)
	r.Kind = KindCommitted
	r.Labels = info.Labels
	r.Updated = time.Now().UTC()
	t.Snapshots[name] = r
	return r, nil
}

// Remove deletes key's record, refusing while a snapshot names it as
// parent.
func (t *Table) Remove(key string) (*Record, error) {
	r, err := t.Get(key)
	if err != nil {
		return nil, err
	}
	if children := t.Children(key); len(children) > 0 {
		return nil, fmt.Errorf("%w: %q is the parent of %q", ErrFailedPrecondition, key, children)
	}
	delete(t.Snapshots, key)
	return r, nil
}

// Children returns the keys whose parent is key, sorted.
func (t *Table) Children(key string) []string {
	var out []string
	for k, r := range t.Snapshots {
		if r.Parent == key {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// Chain returns the records of key's ancestors, nearest first (the order
// of overlayfs lowerdir, top layer first).
func (t *Table) Chain(key string) ([]*Record, error) {
	r, err := t.Get(key)
	if err != nil {
		return nil, err
	}
	var out []*Record
	for p := r.Parent; p != ""; {
		pr, err := t.Get(p)
		if err != nil {
			return nil, fmt.Errorf("parent chain of %q broken: %w", key, err)
		}
		out = append(out, pr)
		p = pr.Parent
		if len(out) > len(t.Snapshots) {
			return nil, fmt.Errorf("parent chain of %q loops", key)
		}
	}
	return out, nil
}

// Keys returns all keys, sorted.
func (t *Table) Keys() []string {
	out := make([]string, 0, len(t.Snapshots))
	for k := range t.Snapshots {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// IDs returns the set of IDs in use.
func (t *Table) IDs() map[string]bool {
	out := make(map[string]bool, len(t.Snapshots))
	for _, r := range t.Snapshots {
		out[r.ID] = true
	}
	return out
}
