package spec

import (
	"errors"
	"fmt"
	"math"
	"path"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ErrInvalid classifies every error of Validate, ValidateID and Load that is
// the config's fault (as opposed to I/O): test with errors.Is.
var ErrInvalid = errors.New("invalid configuration")

// fieldError is one validation failure: the JSON path of the field and what
// is wrong with it, printed on one line.
type fieldError struct {
	field string
	msg   string
}

func (e *fieldError) Error() string        { return e.field + ": " + e.msg }
func (e *fieldError) Is(target error) bool { return target == ErrInvalid }

func invalid(field, format string, args ...any) error {
	return &fieldError{field: field, msg: fmt.Sprintf(format, args...)}
}

// Validate checks what a runtime must refuse before it does anything with
// the config (runtime.md#create: "If the runtime is unable to create the
// environment specified in the config.json, it MUST generate an error").
// It returns the first problem found, as a one-line error starting with the
// JSON path of the field; errors.Is(err, ErrInvalid) holds for all of them.
// It does not look at the host (files, kernel support): that is the job of
// the step that uses the field.
func Validate(s *specs.Spec) error {
	if s == nil {
		return invalid("config", "is empty")
	}
	for _, check := range []func(*specs.Spec) error{
		checkVersion,
		checkRoot,
		checkProcess,
		checkMounts,
		checkHooks,
		checkLinux,
	} {
		if err := check(s); err != nil {
			return err
		}
	}
	return nil
}

// checkVersion: ociVersion is REQUIRED and SemVer; a runtime of major
// version 1 cannot honour configs of another major (config.md#specification-version).
func checkVersion(s *specs.Spec) error {
	if s.Version == "" {
		return invalid("ociVersion", "is required")
	}
	major, rest, ok := strings.Cut(s.Version, ".")
	if !ok || !isDigits(major) || rest == "" {
		return invalid("ociVersion", "%q is not a SemVer version", s.Version)
	}
	if major != "1" {
		return invalid("ociVersion", "%q: major version %s is not supported (want 1.x)", s.Version, major)
	}
	return nil
}

func checkRoot(s *specs.Spec) error {
	if s.Root == nil {
		return invalid("root", "is required")
	}
	if s.Root.Path == "" {
		return invalid("root.path", "is required")
	}
	return nil
}

// checkProcess: process is required for create/start (config.md#process);
// args and env end up in execve(2), which cannot carry NUL bytes.
func checkProcess(s *specs.Spec) error {
	p := s.Process
	if p == nil {
		// config.md: process is OPTIONAL; `start` then fails (runtime.md).
		return nil
	}
	if len(p.Args) == 0 {
		return invalid("process.args", "must contain at least one element")
	}
	for i, a := range p.Args {
		if strings.ContainsRune(a, 0) {
			return invalid(fmt.Sprintf("process.args[%d]", i), "contains a NUL byte")
		}
	}
	if p.Args[0] == "" {
		return invalid("process.args[0]", "is empty")
	}
	if !path.IsAbs(p.Cwd) {
		return invalid("process.cwd", "must be an absolute path, got %q", p.Cwd)
	}
	for i, e := range p.Env {
		name, _, ok := strings.Cut(e, "=")
		switch {
		case !ok:
			// Values are not echoed: environments carry secrets.
			return invalid(fmt.Sprintf("process.env[%d]", i), "is not of the form NAME=value")
		case name == "":
			return invalid(fmt.Sprintf("process.env[%d]", i), "has an empty name")
		case strings.ContainsRune(e, 0):
			return invalid(fmt.Sprintf("process.env[%d]", i), "contains a NUL byte")
		}
	}
	if err := checkCapabilities(p.Capabilities); err != nil {
		return err
	}
	if err := checkRlimits(p.Rlimits); err != nil {
		return err
	}
	if p.OOMScoreAdj != nil && (*p.OOMScoreAdj < -1000 || *p.OOMScoreAdj > 1000) {
		return invalid("process.oomScoreAdj", "%d is outside [-1000, 1000]", *p.OOMScoreAdj)
	}
	if io := p.IOPriority; io != nil {
		switch io.Class {
		case specs.IOPRIO_CLASS_RT, specs.IOPRIO_CLASS_BE, specs.IOPRIO_CLASS_IDLE:
		default:
			return invalid("process.ioPriority.class", "unknown class %q", io.Class)
		}
		if io.Priority < 0 || io.Priority > 7 {
			return invalid("process.ioPriority.priority", "%d is outside [0, 7]", io.Priority)
		}
	}
	if sc := p.Scheduler; sc != nil {
		switch sc.Policy {
		case specs.SchedOther, specs.SchedFIFO, specs.SchedRR, specs.SchedBatch,
			specs.SchedISO, specs.SchedIdle, specs.SchedDeadline:
		default:
			return invalid("process.scheduler.policy", "unknown policy %q", sc.Policy)
		}
	}
	if u := p.User.Umask; u != nil && *u > 0o777 {
		return invalid("process.user.umask", "%#o is not a file mode mask (at most 0777)", *u)
	}
	if p.ConsoleSize != nil && !p.Terminal {
		return invalid("process.consoleSize", "is set but process.terminal is false")
	}
	return nil
}

// checkCapabilities: names must be known; "Any value which cannot be mapped
// to a relevant kernel interface MUST cause an error" (config.md#linux-process).
func checkCapabilities(c *specs.LinuxCapabilities) error {
	if c == nil {
		return nil
	}
	for _, set := range []struct {
		name  string
		names []string
	}{
		{"bounding", c.Bounding},
		{"effective", c.Effective},
		{"inheritable", c.Inheritable},
		{"permitted", c.Permitted},
		{"ambient", c.Ambient},
	} {
		for i, n := range set.names {
			if _, ok := CapabilityNumber(n); !ok {
				return invalid(fmt.Sprintf("process.capabilities.%s[%d]", set.name, i), "unknown capability %q", n)
			}
		}
	}
	return nil
}

// checkRlimits: types from getrlimit(2), each at most once ("If rlimits
// contains duplicated entries with same type, the runtime MUST generate an
// error", config.md#posix-process), soft not above hard.
func checkRlimits(rls []specs.POSIXRlimit) error {
	seen := map[string]bool{}
	for i, r := range rls {
		f := fmt.Sprintf("process.rlimits[%d]", i)
		if _, ok := rlimitTypes[r.Type]; !ok {
			return invalid(f+".type", "unknown rlimit %q", r.Type)
		}
		if seen[r.Type] {
			return invalid(f+".type", "%s given more than once", r.Type)
		}
		seen[r.Type] = true
		if r.Soft > r.Hard {
			return invalid(f, "%s soft limit %d exceeds hard limit %d", r.Type, r.Soft, r.Hard)
		}
	}
	return nil
}

// checkMounts: on Linux a mount destination MUST be an absolute path
// (config.md#mounts). A ".." element is refused too: it can only be a
// mistake or an attempt to climb out of the rootfs, and it would defeat the
// path comparisons made against maskedPaths and readonlyPaths.
func checkMounts(s *specs.Spec) error {
	for i, m := range s.Mounts {
		f := fmt.Sprintf("mounts[%d]", i)
		if err := checkAbsPath(f+".destination", m.Destination); err != nil {
			return err
		}
		if err := checkMappings(f+".uidMappings", m.UIDMappings); err != nil {
			return err
		}
		if err := checkMappings(f+".gidMappings", m.GIDMappings); err != nil {
			return err
		}
		if (len(m.UIDMappings) == 0) != (len(m.GIDMappings) == 0) {
			return invalid(f, "uidMappings and gidMappings must be given together")
		}
	}
	return nil
}

// checkHooks: hook paths MUST be absolute and timeouts greater than zero
// (config.md#posix-platform-hooks).
func checkHooks(s *specs.Spec) error {
	if s.Hooks == nil {
		return nil
	}
	for _, kind := range []struct {
		name  string
		hooks []specs.Hook
	}{
		{"prestart", s.Hooks.Prestart},
		{"createRuntime", s.Hooks.CreateRuntime},
		{"createContainer", s.Hooks.CreateContainer},
		{"startContainer", s.Hooks.StartContainer},
		{"poststart", s.Hooks.Poststart},
		{"poststop", s.Hooks.Poststop},
	} {
		for i, h := range kind.hooks {
			f := fmt.Sprintf("hooks.%s[%d]", kind.name, i)
			if !path.IsAbs(h.Path) {
				return invalid(f+".path", "must be an absolute path, got %q", h.Path)
			}
			if h.Timeout != nil && *h.Timeout <= 0 {
				return invalid(f+".timeout", "must be greater than zero, got %d", *h.Timeout)
			}
			for j, e := range h.Env {
				if !strings.Contains(e, "=") {
					return invalid(fmt.Sprintf("%s.env[%d]", f, j), "is not of the form NAME=value")
				}
			}
		}
	}
	return nil
}

func checkLinux(s *specs.Spec) error {
	l := s.Linux
	if l == nil {
		l = &specs.Linux{}
	}
	ns, err := checkNamespaces(l)
	if err != nil {
		return err
	}
	if err := checkIDMappings(l, ns); err != nil {
		return err
	}
	// The cgroups path is joined under the cgroup mount: ".." would climb
	// out of the hierarchy hako manages.
	if strings.ContainsRune(l.CgroupsPath, 0) {
		return invalid("linux.cgroupsPath", "contains a NUL byte")
	}
	for _, elem := range strings.Split(l.CgroupsPath, "/") {
		if elem == ".." {
			return invalid("linux.cgroupsPath", "%q contains a \"..\" element", l.CgroupsPath)
		}
	}
	// Setting a hostname without a UTS namespace of the container's own
	// would rename the host; runc refuses it too.
	if _, ok := ns[specs.UTSNamespace]; !ok {
		if s.Hostname != "" {
			return invalid("hostname", "is set but linux.namespaces has no uts namespace")
		}
		if s.Domainname != "" {
			return invalid("domainname", "is set but linux.namespaces has no uts namespace")
		}
	}
	if err := checkSysctls(l, ns); err != nil {
		return err
	}
	for i, d := range l.Devices {
		f := fmt.Sprintf("linux.devices[%d]", i)
		if err := checkAbsPath(f+".path", d.Path); err != nil {
			return err
		}
		switch d.Type {
		case "c", "b", "u":
			if d.Major < 0 || d.Minor < 0 {
				return invalid(f, "negative major/minor %d:%d", d.Major, d.Minor)
			}
		case "p":
		default:
			return invalid(f+".type", "%q is not one of c, b, u, p", d.Type)
		}
	}
	if r := l.Resources; r != nil {
		for i, d := range r.Devices {
			f := fmt.Sprintf("linux.resources.devices[%d]", i)
			switch d.Type {
			case "", "a", "c", "b":
			default:
				return invalid(f+".type", "%q is not one of a, c, b", d.Type)
			}
			if strings.Trim(d.Access, "rwm") != "" {
				return invalid(f+".access", "%q may only contain r, w and m", d.Access)
			}
		}
	}
	for i, p := range l.MaskedPaths {
		if err := checkAbsPath(fmt.Sprintf("linux.maskedPaths[%d]", i), p); err != nil {
			return err
		}
	}
	for i, p := range l.ReadonlyPaths {
		if err := checkAbsPath(fmt.Sprintf("linux.readonlyPaths[%d]", i), p); err != nil {
			return err
		}
	}
	switch l.RootfsPropagation {
	case "", "shared", "slave", "private", "unbindable",
		"rshared", "rslave", "rprivate", "runbindable":
	default:
		return invalid("linux.rootfsPropagation", "unknown propagation %q", l.RootfsPropagation)
	}
	if p := l.Personality; p != nil {
		switch p.Domain {
		case specs.PerLinux, specs.PerLinux32:
		default:
			return invalid("linux.personality.domain", "unknown domain %q", p.Domain)
		}
		if len(p.Flags) > 0 {
			// config-linux.md#personality: no flags are defined yet.
			return invalid("linux.personality.flags", "unknown flag %q", p.Flags[0])
		}
	}
	if len(l.TimeOffsets) > 0 {
		if _, ok := ns[specs.TimeNamespace]; !ok {
			return invalid("linux.timeOffsets", "is set but linux.namespaces has no time namespace")
		}
		for clock := range l.TimeOffsets {
			if clock != "monotonic" && clock != "boottime" {
				return invalid("linux.timeOffsets", "unknown clock %q (want monotonic or boottime)", clock)
			}
		}
	}
	return nil
}

// checkNamespaces returns the namespaces by type, after checking each type
// is known, given once, and that a path to join is absolute
// (config-linux.md#namespaces).
func checkNamespaces(l *specs.Linux) (map[specs.LinuxNamespaceType]specs.LinuxNamespace, error) {
	ns := make(map[specs.LinuxNamespaceType]specs.LinuxNamespace, len(l.Namespaces))
	for i, n := range l.Namespaces {
		f := fmt.Sprintf("linux.namespaces[%d]", i)
		known := false
		for _, t := range allNamespaces {
			known = known || t == n.Type
		}
		if !known {
			return nil, invalid(f+".type", "unknown namespace type %q", n.Type)
		}
		if _, dup := ns[n.Type]; dup {
			return nil, invalid(f+".type", "namespace %q given more than once", n.Type)
		}
		if n.Path != "" && !path.IsAbs(n.Path) {
			return nil, invalid(f+".path", "must be an absolute path, got %q", n.Path)
		}
		ns[n.Type] = n
	}
	return ns, nil
}

// checkIDMappings: mappings only make sense for a user namespace the
// runtime creates (config-linux.md#user-namespace-mappings), and a new user
// namespace without them would leave every id unmapped (runc refuses it too).
func checkIDMappings(l *specs.Linux, ns map[specs.LinuxNamespaceType]specs.LinuxNamespace) error {
	user, hasUser := ns[specs.UserNamespace]
	if len(l.UIDMappings) > 0 || len(l.GIDMappings) > 0 {
		switch {
		case !hasUser:
			return invalid("linux.uidMappings", "id mappings need a user namespace in linux.namespaces")
		case user.Path != "":
			return invalid("linux.uidMappings", "id mappings cannot be applied to the existing user namespace %s", user.Path)
		}
	}
	if hasUser && user.Path == "" {
		if len(l.UIDMappings) == 0 {
			return invalid("linux.uidMappings", "a new user namespace needs uid mappings")
		}
		if len(l.GIDMappings) == 0 {
			return invalid("linux.gidMappings", "a new user namespace needs gid mappings")
		}
	}
	if err := checkMappings("linux.uidMappings", l.UIDMappings); err != nil {
		return err
	}
	return checkMappings("linux.gidMappings", l.GIDMappings)
}

func checkMappings(field string, ms []specs.LinuxIDMapping) error {
	for i, m := range ms {
		f := fmt.Sprintf("%s[%d]", field, i)
		if m.Size == 0 {
			return invalid(f+".size", "must not be zero")
		}
		// The kernel takes [id, id+size) and ids are 32-bit.
		if uint64(m.ContainerID)+uint64(m.Size) > math.MaxUint32+1 {
			return invalid(f, "containerID %d + size %d overflows 32 bits", m.ContainerID, m.Size)
		}
		if uint64(m.HostID)+uint64(m.Size) > math.MaxUint32+1 {
			return invalid(f, "hostID %d + size %d overflows 32 bits", m.HostID, m.Size)
		}
	}
	return nil
}

// checkAbsPath requires an absolute path without ".." elements.
func checkAbsPath(field, p string) error {
	if !path.IsAbs(p) {
		return invalid(field, "must be an absolute path, got %q", p)
	}
	if strings.ContainsRune(p, 0) {
		return invalid(field, "contains a NUL byte")
	}
	for _, elem := range strings.Split(p, "/") {
		if elem == ".." {
			return invalid(field, "%q contains a \"..\" element", p)
		}
	}
	return nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
