package testenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStoreStateSeesChanges: each kind of leftover shows up, so that
// RequireStoreUnchanged can fail.
func TestStoreStateSeesChanges(t *testing.T) {
	root := t.TempDir()
	before := ReadStoreState(t, root)
	if ch := before.Changes(ReadStoreState(t, root)); len(ch) != 0 {
		t.Fatalf("empty root changed: %v", ch)
	}
	write := func(p, data string) {
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("metadata/images/ab.json", `{"name":"docker.io/library/x:1"}`)
	write("metadata/images/.tmp-1", "")
	write("content/blobs/sha256/"+strings.Repeat("a", 64), "x")
	write("content/ingest/sha256-"+strings.Repeat("b", 64)+"/data", "x")
	write("tmp/hako-import-1", "")
	got := strings.Join(before.Changes(ReadStoreState(t, root)), "\n")
	for _, want := range []string{"new image name docker.io/library/x:1", "new blob sha256:aaaa", "ingest left: sha256-bbbb", "scratch file left: " + root + "/tmp/hako-import-1", ".tmp-1"} {
		if !strings.Contains(got, want) {
			t.Errorf("changes lack %q:\n%s", want, got)
		}
	}
	after := ReadStoreState(t, root)
	os.Remove(filepath.Join(root, "metadata/images/ab.json"))
	os.Remove(filepath.Join(root, "content/blobs/sha256/"+strings.Repeat("a", 64)))
	got = strings.Join(after.Changes(ReadStoreState(t, root)), "\n")
	for _, want := range []string{"image name removed: docker.io/library/x:1", "blob removed: sha256:aaaa"} {
		if !strings.Contains(got, want) {
			t.Errorf("changes lack %q:\n%s", want, got)
		}
	}
}
