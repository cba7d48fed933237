package spec

import (
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/seccomp"
)

// ImageConfig is the "config" object of an image configuration
// (image-spec config.md#properties). It is, field for field and tag for tag,
// the struct of ocispec.ImageConfig
// (github.com/opencontainers/image-spec/specs-go/v1), so a caller holding
// one converts it with a plain conversion: spec.ImageConfig(img.Config).
//
// It is repeated here rather than imported because that package pulls
// github.com/opencontainers/go-digest, whose package init compiles regular
// expressions: 0.1-0.4 ms and 92 KB on every start of the binary that links
// internal/spec, i.e. on every container start (GODEBUG=inittrace=1). A test
// converts between the two types, so a field added upstream breaks the build
// of the tests rather than being dropped silently.
type ImageConfig struct {
	User         string              `json:"User,omitempty"`
	ExposedPorts map[string]struct{} `json:"ExposedPorts,omitempty"`
	Env          []string            `json:"Env,omitempty"`
	Entrypoint   []string            `json:"Entrypoint,omitempty"`
	Cmd          []string            `json:"Cmd,omitempty"`
	Volumes      map[string]struct{} `json:"Volumes,omitempty"`
	WorkingDir   string              `json:"WorkingDir,omitempty"`
	Labels       map[string]string   `json:"Labels,omitempty"`
	StopSignal   string              `json:"StopSignal,omitempty"`
	// ArgsEscaped is a Windows-only legacy field; ignored on Linux.
	ArgsEscaped bool `json:"ArgsEscaped,omitempty"`
}

// Annotation keys image-spec conversion.md defines for the runtime config.
// image-spec v1.1.1 has no Go constants for these two.
const (
	AnnotationStopSignal   = "org.opencontainers.image.stopSignal"
	AnnotationExposedPorts = "org.opencontainers.image.exposedPorts"
)

// DefaultPath is the PATH a container gets when neither the image nor the
// user sets one: docker's and containerd's default.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// VolumeMode says what FromImage does with the image's Config.Volumes.
type VolumeMode int

const (
	// VolumesIgnore leaves the image's volume paths in the container's root
	// filesystem (podman --image-volume=ignore). Data written there lands
	// in the container's writable layer.
	VolumesIgnore VolumeMode = iota
	// VolumesTmpfs mounts an empty tmpfs at each image volume path (podman
	// --image-volume=tmpfs): the data disappears with the container.
	VolumesTmpfs
)

// Overrides are what a user (`hako run` flags) or the CRI (ContainerConfig)
// changes on top of the image. The zero value runs the image as its
// config says, with docker's defaults.
type Overrides struct {
	// Entrypoint, when non-nil, replaces the image's Entrypoint and drops
	// the image's Cmd, as `docker run --entrypoint` and the CRI's
	// ContainerConfig.command do. An empty slice (or [""]) means "no
	// entrypoint": the command is Cmd alone.
	Entrypoint []string
	// Cmd, when non-nil, replaces the image's Cmd (`docker run IMAGE
	// ARGS...`, CRI args).
	Cmd []string
	// Env entries (NAME=value) replace the image's entries of the same
	// name or are appended. Values from the caller's environment (`-e
	// NAME` without "=") must be filled in by the caller.
	Env []string
	// User replaces the image's Config.User, in the same syntax: "name",
	// "uid", "name:group", "uid:gid", "uid:groupname".
	User string
	// GroupAdd adds supplementary groups (docker --group-add, CRI
	// supplementalGroups): numbers as is, names from the image's
	// /etc/group.
	GroupAdd []string
	// MergeImageGroups adds the user's /etc/group memberships even when
	// the user string names a group ("uid:gid"): containerd's CRI does
	// this (Kubernetes SupplementalGroupsPolicy "Merge"); docker and
	// image-spec conversion.md do not.
	MergeImageGroups bool
	// WorkingDir replaces the image's Config.WorkingDir; absolute.
	WorkingDir string
	// Terminal allocates a pty (docker -t) and sets TERM=xterm unless the
	// environment has TERM.
	Terminal bool
	// Hostname sets the UTS hostname and HOSTNAME in the environment
	// (unless the environment has HOSTNAME). Empty keeps Default's
	// hostname and sets no HOSTNAME.
	Hostname string
	// ReadOnlyRoot mounts the root filesystem read-only (docker
	// --read-only, CRI readonlyRootfs).
	ReadOnlyRoot bool
	// Privileged is docker --privileged: every capability of the kernel,
	// no masked or read-only paths, no seccomp, /sys and /sys/fs/cgroup
	// writable, every host device.
	Privileged bool
	// AddCaps and DropCaps change the default capability set (docker
	// --cap-add/--cap-drop): names with or without "CAP_", any case,
	// "ALL" for every capability.
	AddCaps, DropCaps []string
	// NoNewPrivileges sets process.noNewPrivileges (docker --security-opt
	// no-new-privileges). See FromImage for why it is off by default.
	NoNewPrivileges bool
	// Seccomp, when non-nil, replaces Docker's default profile.
	Seccomp *specs.LinuxSeccomp
	// SeccompUnconfined runs without a seccomp filter (docker
	// --security-opt seccomp=unconfined).
	SeccompUnconfined bool
	// Mounts are added after the default mounts; one whose destination
	// is that of a default mount (say /dev/shm) replaces it.
	Mounts []specs.Mount
	// Volumes says what to do with the image's Config.Volumes.
	Volumes VolumeMode
	// Sysctl sets linux.sysctl (docker --sysctl, CRI sysctls).
	Sysctl map[string]string
	// Annotations are set last: they win over the image's labels and the
	// annotations derived from its config.
	Annotations map[string]string
}

// FromImage returns the runtime config for a container of an image, whose
// unpacked root filesystem is rootfs, with o applied on top, following
// image-spec conversion.md and what docker, podman and containerd do.
//
// rootfs becomes root.path (absolute, or relative to the bundle) and is
// read only for /etc/passwd and /etc/group, resolved with RESOLVE_IN_ROOT:
// no symlink in the image leads out of it. rootfs may be "" when the user
// is numeric or empty; root.path is then "rootfs" and names are errors.
//
// The result starts from Default (runc's spec: namespaces, mounts,
// rlimits) and is made what docker users expect:
//   - process.args is Entrypoint + Cmd; process.cwd the WorkingDir or "/";
//   - process.env is PATH (DefaultPath unless set), HOSTNAME and TERM
//     when asked for, the image's Env, then o.Env; HOME from the user's
//     passwd line ("/" if none) unless set;
//   - process.user from Config.User / o.User (see resolve);
//   - capabilities: Docker's default set (DefaultCapabilities) in
//     bounding, effective and permitted, none inheritable or ambient
//     (inheritable was dropped by docker 23 for CVE-2022-24769);
//   - noNewPrivileges is false, like docker and podman: images rely on
//     setuid and file-capability binaries (su, sudo, ping on older
//     images), which no_new_privs would silently break. The seccomp
//     filter still applies: hako loads it while it holds CAP_SYS_ADMIN;
//   - linux.maskedPaths and readonlyPaths are Docker's (maskedPaths,
//     readonlyPaths); linux.seccomp is Docker's default profile for the
//     bounding set;
//   - /proc is mounted nosuid,noexec,nodev, as docker does;
//   - annotations: Config.Labels, StopSignal as
//     org.opencontainers.image.stopSignal and ExposedPorts as
//     org.opencontainers.image.exposedPorts (labels win on conflict,
//     conversion.md#annotations), then o.Annotations.
//
// Config.Volumes are not mounts unless o.Volumes asks for tmpfs: a real
// volume needs storage and a lifetime that the caller owns. ImageVolumes
// lists them for a caller that creates its own mounts.
//
// The result passes Validate; every error wraps ErrInvalid when the
// image or o is at fault.
func FromImage(img ImageConfig, rootfs string, o Overrides) (*specs.Spec, error) {
	s := Default()
	p := s.Process
	s.Root.Path = rootfs
	if rootfs == "" {
		s.Root.Path = "rootfs"
	}
	s.Root.Readonly = o.ReadOnlyRoot
	p.Terminal = o.Terminal
	if o.Hostname != "" {
		s.Hostname = o.Hostname
	}

	args, err := imageArgs(img, o)
	if err != nil {
		return nil, err
	}
	p.Args = args

	p.Cwd = "/"
	for _, wd := range []string{o.WorkingDir, img.WorkingDir} {
		if wd == "" {
			continue
		}
		if !path.IsAbs(wd) {
			return nil, fmt.Errorf("working directory %q: %w: not an absolute path", wd, ErrInvalid)
		}
		p.Cwd = path.Clean(wd)
		break
	}

	db, err := loadUserDB(rootfs)
	if err != nil {
		return nil, err
	}
	userString := img.User
	if o.User != "" {
		userString = o.User
	}
	u, err := db.resolve(userString, o.MergeImageGroups)
	if err != nil {
		return nil, err
	}
	for _, g := range o.GroupAdd {
		gid, err := db.group(g)
		if err != nil {
			return nil, fmt.Errorf("group-add: %w", err)
		}
		u.user.AdditionalGids = appendGids(u.user.AdditionalGids, gid)
	}
	p.User = u.user

	if p.Env, err = imageEnv(img, o, u.home); err != nil {
		return nil, err
	}

	caps, err := capabilitySet(o)
	if err != nil {
		return nil, err
	}
	p.Capabilities = &specs.LinuxCapabilities{
		Bounding:  caps,
		Effective: slices.Clone(caps),
		Permitted: slices.Clone(caps),
	}
	p.NoNewPrivileges = o.NoNewPrivileges && !o.Privileged

	s.Mounts = imageMounts(s.Mounts, img, o)
	if o.Sysctl != nil {
		s.Linux.Sysctl = maps.Clone(o.Sysctl)
	}
	if o.Privileged {
		if err := makePrivileged(s); err != nil {
			return nil, err
		}
	} else {
		s.Linux.MaskedPaths = maskedPaths()
		s.Linux.ReadonlyPaths = readonlyPaths()
		switch {
		case o.SeccompUnconfined:
		case o.Seccomp != nil:
			s.Linux.Seccomp = o.Seccomp
		default:
			s.Linux.Seccomp = seccomp.DefaultProfile(caps)
		}
	}

	s.Annotations = imageAnnotations(img, o)

	if err := Validate(s); err != nil {
		return nil, fmt.Errorf("config from image: %w", err)
	}
	return s, nil
}

// imageArgs is process.args: Entrypoint + Cmd (conversion.md, note 2),
// with docker's override rules.
func imageArgs(img ImageConfig, o Overrides) ([]string, error) {
	entrypoint, cmd := img.Entrypoint, img.Cmd
	if o.Entrypoint != nil {
		// docker and the CRI: a new entrypoint makes the image's Cmd
		// meaningless (it was written as arguments to the old one).
		entrypoint, cmd = o.Entrypoint, nil
	}
	if o.Cmd != nil {
		cmd = o.Cmd
	}
	// [""] is how docker records `--entrypoint ""` in a committed image,
	// and containerd treats it as no entrypoint too.
	if len(entrypoint) == 1 && entrypoint[0] == "" {
		entrypoint = nil
	}
	args := append(slices.Clone(entrypoint), cmd...)
	if len(args) == 0 {
		return nil, fmt.Errorf("%w: no command: the image has no Entrypoint or Cmd and none was given", ErrInvalid)
	}
	if args[0] == "" {
		return nil, fmt.Errorf("%w: the command's first element is empty", ErrInvalid)
	}
	return args, nil
}

// envSet is an environment with replace-by-name, keeping first-seen order.
type envSet struct {
	list []string
	idx  map[string]int
}

func (e *envSet) set(kv string) {
	name, _, _ := strings.Cut(kv, "=")
	if i, ok := e.idx[name]; ok {
		e.list[i] = kv
		return
	}
	e.idx[name] = len(e.list)
	e.list = append(e.list, kv)
}

func (e *envSet) has(name string) bool { _, ok := e.idx[name]; return ok }

// imageEnv is process.env, built as docker builds it: its defaults (PATH,
// HOSTNAME, TERM) first, replaced by the image's Env, replaced by the
// user's; then HOME, which runc adds at exec time and hako puts in the
// config so that init need not parse the image's passwd.
func imageEnv(img ImageConfig, o Overrides, home string) ([]string, error) {
	e := &envSet{idx: map[string]int{}}
	e.set("PATH=" + DefaultPath)
	if o.Hostname != "" {
		e.set("HOSTNAME=" + o.Hostname)
	}
	if o.Terminal {
		e.set("TERM=xterm")
	}
	for _, src := range []struct {
		what string
		env  []string
	}{{"image Env", img.Env}, {"Env", o.Env}} {
		for i, kv := range src.env {
			// The value is not echoed: environments carry secrets.
			if name, _, ok := strings.Cut(kv, "="); !ok || name == "" {
				return nil, fmt.Errorf("%s[%d]: %w: not of the form NAME=value", src.what, i, ErrInvalid)
			}
			e.set(kv)
		}
	}
	if !e.has("HOME") {
		if home == "" {
			home = "/"
		}
		e.set("HOME=" + home)
	}
	return e.list, nil
}

// DefaultCapabilities is Docker's default capability set
// (moby oci/caps/defaults.go), in Docker's order.
func DefaultCapabilities() []string {
	return []string{
		"CAP_CHOWN",
		"CAP_DAC_OVERRIDE",
		"CAP_FSETID",
		"CAP_FOWNER",
		"CAP_MKNOD",
		"CAP_NET_RAW",
		"CAP_SETGID",
		"CAP_SETUID",
		"CAP_SETFCAP",
		"CAP_SETPCAP",
		"CAP_NET_BIND_SERVICE",
		"CAP_SYS_CHROOT",
		"CAP_KILL",
		"CAP_AUDIT_WRITE",
	}
}

// capName normalises a --cap-add/--cap-drop name: "net_admin",
// "CAP_NET_ADMIN" and "NET_ADMIN" are the same; "ALL" is kept.
func capName(n string) (string, error) {
	u := strings.ToUpper(strings.TrimSpace(n))
	if u == "ALL" {
		return u, nil
	}
	if !strings.HasPrefix(u, "CAP_") {
		u = "CAP_" + u
	}
	if _, ok := CapabilityNumber(u); !ok {
		return "", fmt.Errorf("capability %q: %w: unknown", n, ErrInvalid)
	}
	return u, nil
}

// capabilitySet applies AddCaps and DropCaps to the default set (every
// kernel capability when privileged) with docker's rules: adding ALL gives
// every capability but the dropped ones; dropping ALL leaves only the added
// ones; otherwise drop, then add.
func capabilitySet(o Overrides) ([]string, error) {
	norm := func(in []string) ([]string, error) {
		var out []string
		for _, n := range in {
			c, err := capName(n)
			if err != nil {
				return nil, err
			}
			if !slices.Contains(out, c) {
				out = append(out, c)
			}
		}
		return out, nil
	}
	add, err := norm(o.AddCaps)
	if err != nil {
		return nil, fmt.Errorf("cap-add: %w", err)
	}
	drop, err := norm(o.DropCaps)
	if err != nil {
		return nil, fmt.Errorf("cap-drop: %w", err)
	}
	base := DefaultCapabilities()
	if o.Privileged || slices.Contains(add, "ALL") {
		base = kernelCapabilities()
	}
	var caps []string
	if !slices.Contains(drop, "ALL") {
		for _, c := range base {
			if !slices.Contains(drop, c) {
				caps = append(caps, c)
			}
		}
	}
	for _, c := range add {
		if c != "ALL" && !slices.Contains(caps, c) {
			caps = append(caps, c)
		}
	}
	if caps == nil {
		caps = []string{}
	}
	return caps, nil
}

// maskedPaths is Docker's list (moby oci/defaults.go, v28): runc's ten,
// /proc/interrupts, /sys/devices/virtual/powercap (CVE-2020-8694, RAPL
// power readings) and each CPU's thermal_throttle directory the host has.
func maskedPaths() []string {
	m := []string{
		"/proc/asound",
		"/proc/acpi",
		"/proc/interrupts",
		"/proc/kcore",
		"/proc/keys",
		"/proc/latency_stats",
		"/proc/timer_list",
		"/proc/timer_stats",
		"/proc/sched_debug",
		"/proc/scsi",
		"/sys/firmware",
		"/sys/devices/virtual/powercap",
	}
	// The pattern is constant, so Glob cannot fail.
	tt, _ := filepath.Glob("/sys/devices/system/cpu/cpu[0-9]*/thermal_throttle")
	sort.Strings(tt)
	return append(m, tt...)
}

// readonlyPaths is Docker's (and runc's) list.
func readonlyPaths() []string {
	return []string{
		"/proc/bus",
		"/proc/fs",
		"/proc/irq",
		"/proc/sys",
		"/proc/sysrq-trigger",
	}
}

// ImageVolumes returns the image's Config.Volumes as clean absolute paths,
// sorted, for a caller that provides the volume mounts itself.
func ImageVolumes(img ImageConfig) ([]string, error) {
	var out []string
	for v := range img.Volumes {
		if !path.IsAbs(v) {
			return nil, fmt.Errorf("image volume %q: %w: not an absolute path", v, ErrInvalid)
		}
		out = append(out, path.Clean(v))
	}
	sort.Strings(out)
	return slices.Compact(out), nil
}

// imageMounts adjusts Default's mounts: /proc nosuid,noexec,nodev as
// docker mounts it, a tmpfs per image volume when asked, and the caller's
// mounts, each replacing a mount of the same destination.
func imageMounts(defaults []specs.Mount, img ImageConfig, o Overrides) []specs.Mount {
	var mounts []specs.Mount
	for _, m := range defaults {
		if m.Destination == "/proc" {
			m.Options = []string{"nosuid", "noexec", "nodev"}
		}
		mounts = append(mounts, m)
	}
	put := func(m specs.Mount) {
		i := slices.IndexFunc(mounts, func(d specs.Mount) bool {
			return path.Clean(d.Destination) == path.Clean(m.Destination)
		})
		if i >= 0 {
			mounts = slices.Delete(mounts, i, i+1)
		}
		mounts = append(mounts, m)
	}
	if o.Volumes == VolumesTmpfs {
		vols, _ := ImageVolumes(img) // relative ones are left out; Validate needs absolute
		for _, v := range vols {
			put(specs.Mount{Destination: v, Type: "tmpfs", Source: "tmpfs",
				Options: []string{"nosuid", "nodev", "rw", "rprivate"}})
		}
	}
	for _, m := range o.Mounts {
		put(m)
	}
	return mounts
}

// imageAnnotations applies conversion.md#annotations: the implicit
// annotations, overridden by Config.Labels, overridden by the caller's.
func imageAnnotations(img ImageConfig, o Overrides) map[string]string {
	a := map[string]string{}
	if img.StopSignal != "" {
		a[AnnotationStopSignal] = img.StopSignal
	}
	if len(img.ExposedPorts) > 0 {
		ports := slices.Sorted(maps.Keys(img.ExposedPorts))
		a[AnnotationExposedPorts] = strings.Join(ports, ",")
	}
	maps.Copy(a, img.Labels)
	maps.Copy(a, o.Annotations)
	if len(a) == 0 {
		return nil
	}
	return a
}

// makePrivileged turns s into what docker --privileged runs: no masked or
// read-only paths and no seccomp (the caller already gave every
// capability), /sys and /sys/fs/cgroup writable, every host device created
// and allowed.
func makePrivileged(s *specs.Spec) error {
	s.Linux.MaskedPaths = nil
	s.Linux.ReadonlyPaths = nil
	s.Linux.Seccomp = nil
	for i, m := range s.Mounts {
		if m.Destination == "/sys" || m.Destination == "/sys/fs/cgroup" {
			s.Mounts[i].Options = slices.DeleteFunc(slices.Clone(m.Options), func(o string) bool { return o == "ro" })
		}
	}
	devs, err := hostDevices("/dev")
	if err != nil {
		return fmt.Errorf("privileged: %w", err)
	}
	s.Linux.Devices = devs
	s.Linux.Resources.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
	return nil
}

// hostDevices lists the device nodes under dir (the host's /dev) as
// linux.devices entries at the same paths. Like docker it skips what the
// runtime sets up itself or that is not a device tree: pts, shm, mqueue,
// fd and container-manager directories, console and ptmx.
func hostDevices(dir string) ([]specs.LinuxDevice, error) {
	var devs []specs.LinuxDevice
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) || os.IsPermission(err) {
				return nil // a device vanished or is hidden: not ours to add
			}
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case "pts", "shm", "mqueue", "fd", ".lxc", ".lxd-mounts", ".udev":
				if p != dir {
					return filepath.SkipDir
				}
			}
			return nil
		}
		if d.Name() == "console" || d.Name() == "ptmx" {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return nil
		}
		var typ string
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFCHR:
			typ = "c"
		case unix.S_IFBLK:
			typ = "b"
		default:
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		mode := os.FileMode(st.Mode & 0o777)
		uid, gid := st.Uid, st.Gid
		devs = append(devs, specs.LinuxDevice{
			Path:     path.Join("/dev", filepath.ToSlash(rel)),
			Type:     typ,
			Major:    int64(unix.Major(st.Rdev)),
			Minor:    int64(unix.Minor(st.Rdev)),
			FileMode: &mode,
			UID:      &uid,
			GID:      &gid,
		})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list host devices in %s: %w", dir, err)
	}
	return devs, nil
}
