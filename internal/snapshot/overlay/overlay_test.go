package overlay

import (
	"context"
	"testing"

	"github.com/hako-runtime/hako/internal/snapshot"
	"github.com/hako-runtime/hako/internal/snapshot/snapshottest"
)

func TestSuite(t *testing.T) {
	if err := Supported(); err != nil {
		t.Skip(err)
	}
	snapshottest.Run(t, func(ctx context.Context, root string) (snapshot.Snapshotter, error) {
		return New(ctx, root)
	})
}
