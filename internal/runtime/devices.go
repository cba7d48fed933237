package runtime

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func devRule(typ string, major, minor int64, access string) specs.LinuxDeviceCgroup {
	r := specs.LinuxDeviceCgroup{Allow: true, Type: typ, Access: access}
	if major >= 0 {
		r.Major = &major
	}
	if minor >= 0 {
		r.Minor = &minor
	}
	return r
}

// defaultDeviceRules are the device cgroup rules every container gets after
// its own: the runtime-spec requires the default devices (config-linux.md
// "Default Devices") and /dev/pts to work whatever the rules say, and mknod
// of any node is allowed (only access is controlled), as with runc.
var defaultDeviceRules = []specs.LinuxDeviceCgroup{
	devRule("c", -1, -1, "m"), devRule("b", -1, -1, "m"),
	devRule("c", 1, 3, "rwm"), devRule("c", 1, 5, "rwm"), devRule("c", 1, 7, "rwm"),
	devRule("c", 1, 8, "rwm"), devRule("c", 1, 9, "rwm"), devRule("c", 5, 0, "rwm"),
	devRule("c", 5, 2, "rwm"), devRule("c", 136, -1, "rwm"),
}

// withDeviceRules returns the resources to apply: the spec's device rules,
// then the defaults, then an allow rule for every device in linux.devices
// (the spec asks the runtime to make those available). Rules are evaluated
// in order, the last match winning, so the spec cannot lock out /dev/null.
// The spec's own resources are not modified (they are saved as given).
func withDeviceRules(s *specs.Spec) *specs.LinuxResources {
	r := s.Linux.Resources
	if r == nil || len(r.Devices) == 0 {
		return r
	}
	out := *r
	out.Devices = append(append([]specs.LinuxDeviceCgroup(nil), r.Devices...), defaultDeviceRules...)
	for _, d := range s.Linux.Devices {
		typ := d.Type
		if typ == "u" {
			typ = "c"
		}
		if typ == "p" { // fifos are not device-controlled
			continue
		}
		out.Devices = append(out.Devices, devRule(typ, d.Major, d.Minor, "rwm"))
	}
	return &out
}
