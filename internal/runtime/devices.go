package runtime

import (
	"github.com/hako-runtime/hako/internal/cgroups/devices"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// withDeviceRules returns the resources to apply: the spec's device rules,
// then the defaults (devices.Defaults), then an allow rule for every device in linux.devices
// (the spec asks the runtime to make those available). Rules are evaluated
// in order, the last match winning, so the spec cannot lock out /dev/null.
// The spec's own resources are not modified (they are saved as given).
func withDeviceRules(s *specs.Spec) *specs.LinuxResources {
	r := s.Linux.Resources
	if r == nil || len(r.Devices) == 0 {
		return r
	}
	out := *r
	out.Devices = append(append([]specs.LinuxDeviceCgroup(nil), r.Devices...), devices.Defaults()...)
	for _, d := range s.Linux.Devices {
		typ := d.Type
		if typ == "u" {
			typ = "c"
		}
		if typ == "p" { // fifos are not device-controlled
			continue
		}
		major, minor := d.Major, d.Minor
		out.Devices = append(out.Devices, specs.LinuxDeviceCgroup{Allow: true, Type: typ, Major: &major, Minor: &minor, Access: "rwm"})
	}
	return &out
}
