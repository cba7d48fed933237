package spec

import (
	"errors"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestValidate(t *testing.T) {
	intp := func(i int) *int { return &i }
	for _, tc := range []struct {
		name   string
		mutate func(s *specs.Spec)
		want   string // prefix of the error: the field, then the reason
	}{
		{"ok", func(s *specs.Spec) {}, ""},
		{"ok dev version", func(s *specs.Spec) { s.Version = "1.0.2-dev" }, ""},
		{"ok newer minor", func(s *specs.Spec) { s.Version = "1.9.0" }, ""},
		{"no version", func(s *specs.Spec) { s.Version = "" }, "ociVersion: is required"},
		{"bad version", func(s *specs.Spec) { s.Version = "one" }, `ociVersion: "one" is not a SemVer`},
		{"major 2", func(s *specs.Spec) { s.Version = "2.0.0" }, `ociVersion: "2.0.0": major version 2`},
		{"no root", func(s *specs.Spec) { s.Root = nil }, "root: is required"},
		{"no root path", func(s *specs.Spec) { s.Root.Path = "" }, "root.path: is required"},
		{"no args", func(s *specs.Spec) { s.Process.Args = nil }, "process.args: must contain"},
		{"empty argv0", func(s *specs.Spec) { s.Process.Args = []string{""} }, "process.args[0]: is empty"},
		{"NUL in arg", func(s *specs.Spec) { s.Process.Args = []string{"sh", "a\x00b"} }, "process.args[1]: contains a NUL"},
		{"relative cwd", func(s *specs.Spec) { s.Process.Cwd = "tmp" }, `process.cwd: must be an absolute path, got "tmp"`},
		{"empty cwd", func(s *specs.Spec) { s.Process.Cwd = "" }, "process.cwd: must be an absolute path"},
		{"env without =", func(s *specs.Spec) { s.Process.Env = append(s.Process.Env, "FOO") }, "process.env[2]: is not of the form NAME=value"},
		{"env empty name", func(s *specs.Spec) { s.Process.Env = []string{"=x"} }, "process.env[0]: has an empty name"},
		{"unknown cap", func(s *specs.Spec) { s.Process.Capabilities.Ambient = []string{"CAP_KILL", "CAP_FLY"} },
			`process.capabilities.ambient[1]: unknown capability "CAP_FLY"`},
		{"lowercase cap", func(s *specs.Spec) { s.Process.Capabilities.Bounding = []string{"chown"} },
			`process.capabilities.bounding[0]: unknown capability "chown"`},
		{"unknown rlimit", func(s *specs.Spec) { s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_FOO"}} },
			`process.rlimits[0].type: unknown rlimit "RLIMIT_FOO"`},
		{"duplicate rlimit", func(s *specs.Spec) {
			s.Process.Rlimits = append(s.Process.Rlimits, specs.POSIXRlimit{Type: "RLIMIT_NOFILE", Soft: 1, Hard: 1})
		}, "process.rlimits[1].type: RLIMIT_NOFILE given more than once"},
		{"soft over hard", func(s *specs.Spec) { s.Process.Rlimits[0].Soft = 2048 },
			"process.rlimits[0]: RLIMIT_NOFILE soft limit 2048 exceeds hard limit 1024"},
		{"oom too low", func(s *specs.Spec) { s.Process.OOMScoreAdj = intp(-1001) }, "process.oomScoreAdj: -1001 is outside"},
		{"oom too high", func(s *specs.Spec) { s.Process.OOMScoreAdj = intp(1001) }, "process.oomScoreAdj: 1001 is outside"},
		{"oom edge", func(s *specs.Spec) { s.Process.OOMScoreAdj = intp(-1000) }, ""},
		{"ioprio class", func(s *specs.Spec) { s.Process.IOPriority = &specs.LinuxIOPriority{Class: "IOPRIO_CLASS_X"} },
			`process.ioPriority.class: unknown class "IOPRIO_CLASS_X"`},
		{"ioprio level", func(s *specs.Spec) {
			s.Process.IOPriority = &specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_BE, Priority: 8}
		}, "process.ioPriority.priority: 8 is outside"},
		{"scheduler", func(s *specs.Spec) { s.Process.Scheduler = &specs.Scheduler{Policy: "SCHED_FAST"} },
			`process.scheduler.policy: unknown policy "SCHED_FAST"`},
		{"console without terminal", func(s *specs.Spec) {
			s.Process.Terminal = false
			s.Process.ConsoleSize = &specs.Box{Height: 1, Width: 1}
		}, "process.consoleSize: is set but process.terminal is false"},
		{"relative mount", func(s *specs.Spec) { s.Mounts[1].Destination = "dev" },
			`mounts[1].destination: must be an absolute path, got "dev"`},
		{"dotdot mount", func(s *specs.Spec) { s.Mounts[1].Destination = "/dev/../../etc" },
			`mounts[1].destination: "/dev/../../etc" contains a ".." element`},
		{"trailing slash mount ok", func(s *specs.Spec) { s.Mounts[1].Destination = "/dev/" }, ""},
		{"mount idmap size", func(s *specs.Spec) {
			s.Mounts[0].UIDMappings = []specs.LinuxIDMapping{{Size: 0}}
			s.Mounts[0].GIDMappings = []specs.LinuxIDMapping{{Size: 1}}
		}, "mounts[0].uidMappings[0].size: must not be zero"},
		{"mount idmap half", func(s *specs.Spec) { s.Mounts[0].UIDMappings = []specs.LinuxIDMapping{{Size: 1}} },
			"mounts[0]: uidMappings and gidMappings must be given together"},
		{"hook relative", func(s *specs.Spec) { s.Hooks = &specs.Hooks{Poststop: []specs.Hook{{Path: "true"}}} },
			`hooks.poststop[0].path: must be an absolute path, got "true"`},
		{"hook timeout", func(s *specs.Spec) {
			s.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/bin/true"}, {Path: "/bin/true", Timeout: intp(0)}}}
		}, "hooks.createRuntime[1].timeout: must be greater than zero, got 0"},
		{"hook env", func(s *specs.Spec) {
			s.Hooks = &specs.Hooks{Prestart: []specs.Hook{{Path: "/bin/true", Env: []string{"X"}}}}
		}, "hooks.prestart[0].env[0]: is not of the form NAME=value"},
		{"unknown namespace", func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "net"})
		}, `linux.namespaces[6].type: unknown namespace type "net"`},
		{"duplicate namespace", func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "pid"})
		}, `linux.namespaces[6].type: namespace "pid" given more than once`},
		{"relative namespace path", func(s *specs.Spec) { s.Linux.Namespaces[1].Path = "proc/1/ns/net" },
			`linux.namespaces[1].path: must be an absolute path, got "proc/1/ns/net"`},
		{"time namespace ok", func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "time"})
			s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"monotonic": {Secs: 1}}
		}, ""},
		{"mappings without userns", func(s *specs.Spec) {
			s.Linux.UIDMappings = []specs.LinuxIDMapping{{HostID: 1000, Size: 1}}
		}, "linux.uidMappings: id mappings need a user namespace"},
		{"mappings with joined userns", func(s *specs.Spec) {
			ToRootless(s, 1000, 1000)
			s.Linux.Namespaces[len(s.Linux.Namespaces)-1].Path = "/proc/1/ns/user"
		}, "linux.uidMappings: id mappings cannot be applied to the existing user namespace /proc/1/ns/user"},
		{"userns without mappings", func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "user"})
		}, "linux.uidMappings: a new user namespace needs uid mappings"},
		{"userns without gid mappings", func(s *specs.Spec) {
			ToRootless(s, 1000, 1000)
			s.Linux.GIDMappings = nil
		}, "linux.gidMappings: a new user namespace needs gid mappings"},
		{"joined userns without mappings ok", func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "user", Path: "/proc/1/ns/user"})
		}, ""},
		{"cgroupsPath dotdot", func(s *specs.Spec) { s.Linux.CgroupsPath = "/hako/../../x" },
			`linux.cgroupsPath: "/hako/../../x" contains a ".." element`},
		{"cgroupsPath ok", func(s *specs.Spec) { s.Linux.CgroupsPath = "/hako/c1" }, ""},
		{"umask", func(s *specs.Spec) { u := uint32(0o1000); s.Process.User.Umask = &u },
			"process.user.umask: 01000 is not a file mode mask"},
		{"mapping zero size", func(s *specs.Spec) {
			ToRootless(s, 1000, 1000)
			s.Linux.GIDMappings[0].Size = 0
		}, "linux.gidMappings[0].size: must not be zero"},
		{"mapping overflow", func(s *specs.Spec) {
			ToRootless(s, 1000, 1000)
			s.Linux.UIDMappings = append(s.Linux.UIDMappings, specs.LinuxIDMapping{ContainerID: 1, HostID: 0xffffff00, Size: 0x101})
		}, "linux.uidMappings[1]: hostID 4294967040 + size 257 overflows 32 bits"},
		{"mapping to the top", func(s *specs.Spec) {
			ToRootless(s, 1000, 1000)
			s.Linux.UIDMappings = append(s.Linux.UIDMappings, specs.LinuxIDMapping{ContainerID: 1, HostID: 0xffffff00, Size: 0x100})
		}, ""},
		{"hostname without uts", func(s *specs.Spec) { s.Linux.Namespaces = s.Linux.Namespaces[:3] },
			"hostname: is set but linux.namespaces has no uts namespace"},
		{"hostname without linux", func(s *specs.Spec) { s.Linux = nil }, "hostname: is set but"},
		{"no linux no hostname", func(s *specs.Spec) { s.Linux = nil; s.Hostname = "" }, ""},
		{"sysctl net ok", func(s *specs.Spec) {
			s.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1", "net/ipv4/conf/eth0.100/forwarding": "1", "kernel.shmmax": "1", "fs.mqueue.msg_max": "1"}
		}, ""},
		{"sysctl host", func(s *specs.Spec) { s.Linux.Sysctl = map[string]string{"vm.swappiness": "1"} },
			`linux.sysctl["vm.swappiness"]: "vm.swappiness" is not a namespaced sysctl`},
		{"sysctl net without netns", func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces[:1], s.Linux.Namespaces[2:]...)
			s.Linux.Sysctl = map[string]string{"net.core.somaxconn": "1"}
		}, `linux.sysctl["net.core.somaxconn"]: "net.core.somaxconn" needs its own network namespace`},
		{"sysctl value newline", func(s *specs.Spec) {
			s.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1\nkernel.core_pattern=|/x"}
		},
			`linux.sysctl["net.ipv4.ip_forward"]: value "1\nkernel.core_pattern=|/x" contains a newline or NUL`},
		{"sysctl value NUL", func(s *specs.Spec) { s.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1\x00"} },
			`linux.sysctl["net.ipv4.ip_forward"]: value "1\x00" contains a newline or NUL`},
		{"sysctl hostname", func(s *specs.Spec) { s.Linux.Sysctl = map[string]string{"kernel.hostname": "x"} },
			`linux.sysctl["kernel.hostname"]: set the hostname field instead`},
		{"sysctl traversal", func(s *specs.Spec) { s.Linux.Sysctl = map[string]string{"net/../../vm/swappiness": "1"} },
			`linux.sysctl["net/../../vm/swappiness"]: has an empty element`},
		{"sysctl leading dot", func(s *specs.Spec) { s.Linux.Sysctl = map[string]string{".net.x": "1"} },
			`linux.sysctl[".net.x"]: has an empty element`},
		{"sysctl space", func(s *specs.Spec) { s.Linux.Sysctl = map[string]string{"net.ipv4 x": "1"} },
			`linux.sysctl["net.ipv4 x"]: contains ' '`},
		{"sysctl newline", func(s *specs.Spec) { s.Linux.Sysctl = map[string]string{"net.x\ny": "1"} },
			`linux.sysctl["net.x\ny"]: contains '\n'`},
		{"device type", func(s *specs.Spec) { s.Linux.Devices = []specs.LinuxDevice{{Path: "/dev/x", Type: "z"}} },
			`linux.devices[0].type: "z" is not one of c, b, u, p`},
		{"device path", func(s *specs.Spec) { s.Linux.Devices = []specs.LinuxDevice{{Path: "dev/x", Type: "c"}} },
			`linux.devices[0].path: must be an absolute path`},
		{"device fifo ok", func(s *specs.Spec) { s.Linux.Devices = []specs.LinuxDevice{{Path: "/dev/fifo", Type: "p"}} }, ""},
		{"device cgroup type", func(s *specs.Spec) { s.Linux.Resources.Devices[0].Type = "p" },
			`linux.resources.devices[0].type: "p" is not one of a, c, b`},
		{"device cgroup access", func(s *specs.Spec) { s.Linux.Resources.Devices[0].Access = "rwx" },
			`linux.resources.devices[0].access: "rwx" may only contain r, w and m`},
		{"masked relative", func(s *specs.Spec) { s.Linux.MaskedPaths[2] = "proc/kcore" },
			`linux.maskedPaths[2]: must be an absolute path`},
		{"readonly dotdot", func(s *specs.Spec) { s.Linux.ReadonlyPaths[0] = "/proc/../etc" },
			`linux.readonlyPaths[0]: "/proc/../etc" contains a ".." element`},
		{"propagation", func(s *specs.Spec) { s.Linux.RootfsPropagation = "public" },
			`linux.rootfsPropagation: unknown propagation "public"`},
		{"personality", func(s *specs.Spec) { s.Linux.Personality = &specs.LinuxPersonality{Domain: "WINDOWS"} },
			`linux.personality.domain: unknown domain "WINDOWS"`},
		{"personality ok", func(s *specs.Spec) { s.Linux.Personality = &specs.LinuxPersonality{Domain: specs.PerLinux32} }, ""},
		{"time offsets without ns", func(s *specs.Spec) {
			s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"monotonic": {Secs: 1}}
		}, "linux.timeOffsets: is set but linux.namespaces has no time namespace"},
		{"time offsets clock", func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "time"})
			s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"realtime": {Secs: 1}}
		}, `linux.timeOffsets: unknown clock "realtime"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Default()
			tc.mutate(s)
			err := Validate(s)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, tc.want) {
				t.Errorf("error %q, want it to start with %q", msg, tc.want)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error is not one line: %q", msg)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("errors.Is(%v, ErrInvalid) = false", err)
			}
		})
	}
	if err := Validate(nil); err == nil {
		t.Error("Validate(nil) passed")
	}
}

func TestValidateID(t *testing.T) {
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{"a", true},
		{"mycontainer", true},
		{"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", true},
		{"a_b+c-d.e", true},
		{"x-", true},
		{"-x", false}, // runc accepts it; an option on every later command line
		{"--", false},
		{".hidden", true},
		{"...", true},
		{strings.Repeat("x", MaxIDLength), true},
		{"", false},
		{".", false},
		{"..", false},
		{"../x", false},
		{"a/b", false},
		{"/abs", false},
		{"a b", false},
		{"a\x00b", false},
		{"a\nb", false},
		{"a:b", false},
		{"a,b", false}, // runc 1.1's regexp let "," through by accident; 1.2 does not
		{"é", false},
		{strings.Repeat("x", MaxIDLength+1), false},
		{strings.Repeat("x", 1<<20), false},
	} {
		err := ValidateID(tc.id)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateID(%.40q) = %v, want ok=%v", tc.id, err, tc.ok)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalid) || strings.Contains(err.Error(), "\n") || len(err.Error()) > 200 && len(tc.id) < 100 {
				t.Errorf("ValidateID(%.40q): bad error %q", tc.id, err)
			}
		}
	}
}

// config.md: process is OPTIONAL (a container without one can be created;
// start then fails), so a spec without it validates.
func TestValidateWithoutProcess(t *testing.T) {
	s := Default()
	s.Process = nil
	if err := Validate(s); err != nil {
		t.Fatalf("spec without process rejected: %v", err)
	}
}
