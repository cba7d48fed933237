package caps

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

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
