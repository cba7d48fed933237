package native

import (
	"context"
	"testing"

	"github.com/hako-runtime/hako/internal/snapshot"
	"github.com/hako-runtime/hako/internal/snapshot/snapshottest"
)

func TestSuite(t *testing.T) {
	snapshottest.Run(t, func(ctx context.Context, root string) (snapshot.Snapshotter, error) {
		return New(ctx, root)
	})
}
