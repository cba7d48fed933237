package cli

import (
	"strings"
	"testing"
)

func TestInvokedCommand(t *testing.T) {
	for _, c := range []struct {
		args string
		want string
	}{
		{"hako run --bundle b id", "run"},
		{"hako --root /r --debug run id", "run"},
		{"hako --root=/r --log /l --log-format json state id", "state"},
		{"hako -root /r -systemd-cgroup kill id", "kill"},
		{"hako --rootless true --criu x create id", "create"},
		{"hako --debug=false list", "list"},
		{"hako", ""},
		{"hako --help", ""},
		{"hako -v run", ""},
		{"hako --unknown run", ""},
		{"hako -- run", ""},
		{"hako --root", ""},
	} {
		if got := invokedCommand(strings.Fields(c.args)); got != c.want {
			t.Errorf("invokedCommand(%q) = %q, want %q", c.args, got, c.want)
		}
	}
}

func TestOnlyInvoked(t *testing.T) {
	all := newApp(nil).Commands
	if got := onlyInvoked(all, []string{"hako", "--root", "/r", "exec", "id", "ls"}); len(got) != 1 || got[0].Name != "exec" {
		t.Errorf("exec: got %d commands", len(got))
	}
	for _, args := range [][]string{{"hako", "help", "run"}, {"hako", "nosuch"}, {"hako", "--help"}} {
		if got := onlyInvoked(all, args); len(got) != len(all) {
			t.Errorf("%q: got %d commands, want all %d", args, len(got), len(all))
		}
	}
}

// A command parses its own flags the same with or without the others.
func TestMainWithOnlyInvokedCommand(t *testing.T) {
	root := t.TempDir()
	if code := Main(t.Context(), []string{"hako", "--root", root, "list", "-q"}); code != 0 {
		t.Errorf("list -q: exit %d", code)
	}
	if code := Main(t.Context(), []string{"hako", "--root", root, "state", "nosuch"}); code != 1 {
		t.Errorf("state of a missing container: exit %d, want 1", code)
	}
}
