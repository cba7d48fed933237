package flock

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestLock(t *testing.T) {
	p := filepath.Join(t.TempDir(), "lock")
	ctx := context.Background()
	sh1, err := Lock(ctx, p, unix.LOCK_SH)
	if err != nil {
		t.Fatal(err)
	}
	sh2, err := Lock(ctx, p, unix.LOCK_SH)
	if err != nil {
		t.Fatalf("second shared lock: %v", err)
	}
	// An exclusive lock waits for both; a cancelled wait gives ctx's error.
	cctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	if _, err := Lock(cctx, p, unix.LOCK_EX); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("exclusive lock while shared held: %v, want deadline exceeded", err)
	}
	sh1()
	sh2()
	ex, err := Lock(ctx, p, unix.LOCK_EX)
	if err != nil {
		t.Fatalf("exclusive lock after release: %v", err)
	}
	ex()
	if _, err := Lock(ctx, filepath.Join(p, "not-a-dir", "lock"), unix.LOCK_EX); err == nil {
		t.Fatal("lock under a file succeeded")
	}
}
