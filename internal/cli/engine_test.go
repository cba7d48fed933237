package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v3"
)

// Without hako-engine beside the executable (the test binary here), an
// engine command fails with a one-line error naming what is missing.
func TestEngineCommandWithoutEngine(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(self), EngineBinary)); err == nil {
		t.Skip("a hako-engine lies beside the test binary")
	}
	_, err = enginePath()
	if err == nil || !strings.Contains(err.Error(), EngineBinary+", which is not installed beside") {
		t.Fatalf("enginePath: %v", err)
	}
	if code := Main(t.Context(), []string{"hako", "--root", t.TempDir(), "pull", "busybox"}); code != 1 {
		t.Fatalf("pull without hako-engine: exit %d, want 1", code)
	}
}

// hako lists every engine command in its help, as a placeholder that
// hands over to hako-engine; hako-engine's implementations replace them by
// name and keep the category.
func TestWithEngine(t *testing.T) {
	descs := engineCommands()
	lean := withEngine(nil, descs, nil)
	if len(lean) != len(descs) {
		t.Fatalf("lean: %d commands, want %d", len(lean), len(descs))
	}
	for i, c := range lean {
		if c.Name != descs[i].name || !c.SkipFlagParsing || c.Action == nil {
			t.Errorf("lean %s: not a pass-through placeholder", c.Name)
		}
	}
	pull := &cli.Command{Name: "pull"}
	extra := &cli.Command{Name: "extra"}
	full := withEngine(nil, descs, []*cli.Command{pull, extra})
	if len(full) != len(descs)+1 || full[0] != pull || full[len(full)-1] != extra {
		t.Fatalf("engine: got %d commands, implementations not in place", len(full))
	}
	if pull.Category != "images" {
		t.Errorf("pull category %q, want images", pull.Category)
	}
}
