package caps

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestNumber(t *testing.T) {
	for name, want := range map[string]int{"CAP_CHOWN": 0, "CAP_SYS_ADMIN": 21, "CAP_CHECKPOINT_RESTORE": 40} {
		got, ok := Number(name)
		if !ok || got != want {
			t.Errorf("Number(%s) = %d, %v; want %d", name, got, ok, want)
		}
	}
	if _, ok := Number("CAP_NOPE"); ok {
		t.Error("unknown name accepted")
	}
}

func TestParse(t *testing.T) {
	s, err := Parse(&specs.LinuxCapabilities{Bounding: []string{"CAP_KILL", "CAP_CHOWN"}})
	if err != nil {
		t.Fatal(err)
	}
	if s.Bounding != 1<<5|1 {
		t.Errorf("bounding mask %b", s.Bounding)
	}
	if _, err := Parse(&specs.LinuxCapabilities{Effective: []string{"CAP_BOGUS"}}); err == nil {
		t.Error("bogus capability accepted")
	}
}
