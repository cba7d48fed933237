package spec

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hako-runtime/hako/internal/seccomp"
	"github.com/hako-runtime/hako/internal/testenv"
)

// TestImageConfigIsOCIs: the conversion below only compiles while
// ImageConfig has exactly ocispec.ImageConfig's fields; and both decode the
// same JSON to the same values (the tags match).
func TestImageConfigIsOCIs(t *testing.T) {
	doc := []byte(`{"User":"u:g","ExposedPorts":{"80/tcp":{}},"Env":["A=1"],"Entrypoint":["/e"],
		"Cmd":["c"],"Volumes":{"/v":{}},"WorkingDir":"/w","Labels":{"l":"v"},"StopSignal":"SIGINT","ArgsEscaped":true}`)
	var theirs ocispec.ImageConfig
	var ours ImageConfig
	if err := json.Unmarshal(doc, &theirs); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(doc, &ours); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ImageConfig(theirs), ours) {
		t.Errorf("decoded differently:\n%+v\n%+v", theirs, ours)
	}
	a, _ := json.Marshal(theirs)
	b, _ := json.Marshal(ours)
	if string(a) != string(b) {
		t.Errorf("encoded differently:\n%s\n%s", a, b)
	}
}

// imageRootfs is a rootfs with the users the tests name.
func imageRootfs(t *testing.T) string {
	t.Helper()
	rootfs := t.TempDir()
	writeRootfs(t, rootfs, map[string]string{"etc/passwd": testPasswd, "etc/group": testGroup})
	return rootfs
}

func TestFromImageArgs(t *testing.T) {
	rootfs := imageRootfs(t)
	for _, tc := range []struct {
		name       string
		entrypoint []string
		cmd        []string
		o          Overrides
		want       []string // nil: error
	}{
		{name: "cmd only", cmd: []string{"sh", "-c", "x"}, want: []string{"sh", "-c", "x"}},
		{name: "entrypoint only", entrypoint: []string{"/init"}, want: []string{"/init"}},
		{name: "entrypoint+cmd", entrypoint: []string{"/init", "--"}, cmd: []string{"serve"}, want: []string{"/init", "--", "serve"}},
		{name: "cmd override keeps entrypoint", entrypoint: []string{"/init"}, cmd: []string{"serve"},
			o: Overrides{Cmd: []string{"debug", "-v"}}, want: []string{"/init", "debug", "-v"}},
		{name: "entrypoint override drops image cmd", entrypoint: []string{"/init"}, cmd: []string{"serve"},
			o: Overrides{Entrypoint: []string{"/bin/sh"}}, want: []string{"/bin/sh"}},
		{name: "both overridden", entrypoint: []string{"/init"}, cmd: []string{"serve"},
			o: Overrides{Entrypoint: []string{"/bin/sh"}, Cmd: []string{"-c", "id"}}, want: []string{"/bin/sh", "-c", "id"}},
		{name: "empty entrypoint override", entrypoint: []string{"/init"}, cmd: []string{"serve"},
			o: Overrides{Entrypoint: []string{}, Cmd: []string{"ls"}}, want: []string{"ls"}},
		{name: `entrypoint [""] in the image`, entrypoint: []string{""}, cmd: []string{"ls"}, want: []string{"ls"}},
		{name: `entrypoint [""] override`, entrypoint: []string{"/init"}, o: Overrides{Entrypoint: []string{""}, Cmd: []string{"ls"}}, want: []string{"ls"}},
		{name: "empty cmd override keeps entrypoint alone", entrypoint: []string{"/init"}, cmd: []string{"serve"},
			o: Overrides{Cmd: []string{}}, want: []string{"/init"}},
		{name: "nothing", want: nil},
		{name: "entrypoint override without cmd, image had only cmd", cmd: []string{"serve"},
			o: Overrides{Entrypoint: []string{}}, want: nil},
		{name: "empty first element", cmd: []string{"", "x"}, want: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := ImageConfig{Entrypoint: tc.entrypoint, Cmd: tc.cmd}
			s, err := FromImage(img, rootfs, tc.o)
			if tc.want == nil {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("got %v, want ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(s.Process.Args, tc.want) {
				t.Errorf("args %q, want %q", s.Process.Args, tc.want)
			}
		})
	}
}

func TestFromImageEnv(t *testing.T) {
	rootfs := imageRootfs(t)
	for _, tc := range []struct {
		name string
		img  ImageConfig
		o    Overrides
		want []string // nil: error
	}{
		{name: "defaults", want: []string{"PATH=" + DefaultPath, "HOME=/root"}},
		{name: "image PATH replaces the default in place",
			img:  ImageConfig{Env: []string{"A=1", "PATH=/opt/bin"}},
			want: []string{"PATH=/opt/bin", "A=1", "HOME=/root"}},
		{name: "override replaces by key, appends new",
			img:  ImageConfig{Env: []string{"A=1", "B=2"}},
			o:    Overrides{Env: []string{"B=3", "C=4", "A="}},
			want: []string{"PATH=" + DefaultPath, "A=", "B=3", "C=4", "HOME=/root"}},
		{name: "value with =", o: Overrides{Env: []string{"X=a=b"}},
			want: []string{"PATH=" + DefaultPath, "X=a=b", "HOME=/root"}},
		{name: "duplicate in image: last wins",
			img:  ImageConfig{Env: []string{"A=1", "A=2"}},
			want: []string{"PATH=" + DefaultPath, "A=2", "HOME=/root"}},
		{name: "HOME from passwd of the user", o: Overrides{User: "alice"},
			want: []string{"PATH=" + DefaultPath, "HOME=/home/alice"}},
		{name: "HOME / without a passwd line", o: Overrides{User: "4242"},
			want: []string{"PATH=" + DefaultPath, "HOME=/"}},
		{name: "HOME / for an empty home field", o: Overrides{User: "nohome"},
			want: []string{"PATH=" + DefaultPath, "HOME=/"}},
		{name: "image HOME kept", img: ImageConfig{Env: []string{"HOME=/data"}}, o: Overrides{User: "alice"},
			want: []string{"PATH=" + DefaultPath, "HOME=/data"}},
		{name: "hostname and terminal", o: Overrides{Hostname: "web1", Terminal: true},
			want: []string{"PATH=" + DefaultPath, "HOSTNAME=web1", "TERM=xterm", "HOME=/root"}},
		{name: "image TERM and HOSTNAME win over the defaults",
			img:  ImageConfig{Env: []string{"TERM=dumb", "HOSTNAME=img"}},
			o:    Overrides{Hostname: "web1", Terminal: true},
			want: []string{"PATH=" + DefaultPath, "HOSTNAME=img", "TERM=dumb", "HOME=/root"}},
		{name: "override without =", o: Overrides{Env: []string{"SECRET"}}},
		{name: "image entry without name", img: ImageConfig{Env: []string{"=x"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.img.Cmd = []string{"/bin/sh"}
			s, err := FromImage(tc.img, rootfs, tc.o)
			if tc.want == nil {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("got %v, want ErrInvalid", err)
				}
				if strings.Contains(err.Error(), "SECRET") {
					t.Errorf("error echoes the environment: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(s.Process.Env, tc.want) {
				t.Errorf("env %q\nwant %q", s.Process.Env, tc.want)
			}
		})
	}
}

func TestFromImageUserAndWorkdir(t *testing.T) {
	rootfs := imageRootfs(t)
	for _, tc := range []struct {
		name    string
		img     ImageConfig
		o       Overrides
		user    specs.User
		cwd     string
		wantErr error
	}{
		{name: "root by default", user: specs.User{AdditionalGids: []uint32{0, 10}}, cwd: "/"},
		{name: "image user", img: ImageConfig{User: "bob", WorkingDir: "/srv/"},
			user: specs.User{UID: 1001, GID: 1001, AdditionalGids: []uint32{1001, 50, 44, 71}}, cwd: "/srv"},
		{name: "override user and workdir", img: ImageConfig{User: "bob", WorkingDir: "/srv"}, o: Overrides{User: "alice:video", WorkingDir: "/tmp/../data"},
			user: specs.User{UID: 1000, GID: 44, AdditionalGids: []uint32{44}}, cwd: "/data"},
		{name: "group-add by name and number", o: Overrides{User: "1000:1000", GroupAdd: []string{"staff", "9999", "1000"}},
			user: specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{1000, 50, 9999}}, cwd: "/"},
		{name: "unknown image user", img: ImageConfig{User: "postgres"}, wantErr: ErrUnknownUser},
		{name: "unknown group-add", o: Overrides{GroupAdd: []string{"docker"}}, wantErr: ErrUnknownUser},
		{name: "relative image workdir", img: ImageConfig{WorkingDir: "app"}, wantErr: ErrInvalid},
		{name: "relative override workdir", o: Overrides{WorkingDir: "app"}, wantErr: ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.img.Cmd = []string{"/bin/sh"}
			s, err := FromImage(tc.img, rootfs, tc.o)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("got %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(s.Process.User, tc.user) || s.Process.Cwd != tc.cwd {
				t.Errorf("user %+v cwd %q, want %+v %q", s.Process.User, s.Process.Cwd, tc.user, tc.cwd)
			}
		})
	}
}

func TestFromImageAnnotations(t *testing.T) {
	img := ImageConfig{
		Cmd:          []string{"/app"},
		StopSignal:   "SIGQUIT",
		ExposedPorts: map[string]struct{}{"8080/tcp": {}, "53/udp": {}, "443/tcp": {}},
		Volumes:      map[string]struct{}{"/data": {}},
		Labels: map[string]string{
			"org.example.team":                    "infra",
			"org.opencontainers.image.stopSignal": "SIGTERM", // labels win over implicit ones
		},
	}
	s, err := FromImage(img, "", Overrides{Annotations: map[string]string{"org.example.team": "web", "io.kubernetes.pod": "p"}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		AnnotationStopSignal:   "SIGTERM",
		AnnotationExposedPorts: "443/tcp,53/udp,8080/tcp",
		"org.example.team":     "web",
		"io.kubernetes.pod":    "p",
	}
	if !reflect.DeepEqual(s.Annotations, want) {
		t.Errorf("annotations %v\nwant %v", s.Annotations, want)
	}
	img.Labels = nil
	s, _ = FromImage(img, "", Overrides{})
	if s.Annotations[AnnotationStopSignal] != "SIGQUIT" {
		t.Errorf("stop signal annotation %q", s.Annotations[AnnotationStopSignal])
	}
	if s, _ := FromImage(ImageConfig{Cmd: []string{"/app"}}, "", Overrides{}); s.Annotations != nil {
		t.Errorf("no annotations expected, got %v", s.Annotations)
	}
}

func TestFromImageVolumesAndMounts(t *testing.T) {
	img := ImageConfig{Cmd: []string{"/app"}, Volumes: map[string]struct{}{"/var/lib/db/": {}, "/cache": {}}}
	vols, err := ImageVolumes(img)
	if err != nil || !slices.Equal(vols, []string{"/cache", "/var/lib/db"}) {
		t.Fatalf("ImageVolumes = %v, %v", vols, err)
	}
	s, err := FromImage(img, "", Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	def := Default()
	if len(s.Mounts) != len(def.Mounts) {
		t.Errorf("VolumesIgnore added mounts: %+v", s.Mounts)
	}
	shm := specs.Mount{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"size=1g"}}
	data := specs.Mount{Destination: "/cache", Type: "bind", Source: "/var/lib/hako/volumes/x", Options: []string{"rbind"}}
	s, err = FromImage(img, "", Overrides{Volumes: VolumesTmpfs, Mounts: []specs.Mount{shm, data}})
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	byDest := map[string]specs.Mount{}
	for _, m := range s.Mounts {
		count[m.Destination]++
		byDest[m.Destination] = m
	}
	for d, n := range count {
		if n != 1 {
			t.Errorf("%s mounted %d times", d, n)
		}
	}
	if !reflect.DeepEqual(byDest["/dev/shm"], shm) || !reflect.DeepEqual(byDest["/cache"], data) {
		t.Errorf("caller's mounts must replace defaults and volumes: %+v %+v", byDest["/dev/shm"], byDest["/cache"])
	}
	if m := byDest["/var/lib/db"]; m.Type != "tmpfs" {
		t.Errorf("tmpfs volume: %+v", m)
	}
	if _, err := ImageVolumes(ImageConfig{Volumes: map[string]struct{}{"rel": {}}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("relative volume: %v", err)
	}
}

func TestFromImageCapabilities(t *testing.T) {
	def := DefaultCapabilities()
	without := func(drop ...string) []string {
		return slices.DeleteFunc(DefaultCapabilities(), func(c string) bool { return slices.Contains(drop, c) })
	}
	all := kernelCapabilities()
	for _, tc := range []struct {
		name      string
		add, drop []string
		want      []string // nil: error
	}{
		{name: "default", want: def},
		{name: "add", add: []string{"sys_admin", "CAP_NET_ADMIN", "NET_ADMIN"}, want: append(DefaultCapabilities(), "CAP_SYS_ADMIN", "CAP_NET_ADMIN")},
		{name: "drop", drop: []string{"net_raw", "CAP_MKNOD"}, want: without("CAP_NET_RAW", "CAP_MKNOD")},
		{name: "add an already present one", add: []string{"CHOWN"}, want: def},
		{name: "drop all add one", drop: []string{"all"}, add: []string{"NET_BIND_SERVICE"}, want: []string{"CAP_NET_BIND_SERVICE"}},
		{name: "drop all", drop: []string{"ALL"}, want: []string{}},
		{name: "add all drop one", add: []string{"ALL"}, drop: []string{"SYS_ADMIN"},
			want: slices.DeleteFunc(slices.Clone(all), func(c string) bool { return c == "CAP_SYS_ADMIN" })},
		{name: "unknown add", add: []string{"CAP_FLY"}},
		{name: "unknown drop", drop: []string{"fly"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := FromImage(ImageConfig{Cmd: []string{"/app"}}, "", Overrides{AddCaps: tc.add, DropCaps: tc.drop})
			if tc.want == nil {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("got %v, want ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c := s.Process.Capabilities
			for name, set := range map[string][]string{"bounding": c.Bounding, "effective": c.Effective, "permitted": c.Permitted} {
				if !slices.Equal(set, tc.want) {
					t.Errorf("%s = %v\nwant %v", name, set, tc.want)
				}
			}
			if len(c.Inheritable) != 0 || len(c.Ambient) != 0 {
				t.Errorf("inheritable %v ambient %v, want none", c.Inheritable, c.Ambient)
			}
			// The seccomp profile follows the capabilities: clone with
			// namespace flags is allowed only with CAP_SYS_ADMIN.
			if !reflect.DeepEqual(s.Linux.Seccomp, seccomp.DefaultProfile(tc.want)) {
				t.Errorf("seccomp profile is not DefaultProfile of the capability set")
			}
		})
	}
	a, _ := FromImage(ImageConfig{Cmd: []string{"/app"}}, "", Overrides{})
	b, _ := FromImage(ImageConfig{Cmd: []string{"/app"}}, "", Overrides{AddCaps: []string{"SYS_ADMIN"}})
	if reflect.DeepEqual(a.Linux.Seccomp, b.Linux.Seccomp) {
		t.Error("CAP_SYS_ADMIN must widen Docker's profile (it does for mount, clone, setns...)")
	}
}

// dockerCaps is Docker's default capability set, written down separately
// from DefaultCapabilities: from `docker run --rm alpine grep Cap
// /proc/self/status` (CapBnd 00000000a80425fb) on Docker 20-28.
const dockerCapBnd = 0x00000000a80425fb

// TestFromImageGolden compares the privilege-relevant parts with runc's
// generated spec plus Docker's documented additions: the read-only paths
// are runc's, the masked paths runc's plus Docker's three, the mounts
// runc's (with /proc nosuid,noexec,nodev as Docker has it), the
// capabilities Docker's, and podman's defaults a subset of them.
func TestFromImageGolden(t *testing.T) {
	s, err := FromImage(ImageConfig{Cmd: []string{"/app"}}, "", Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	runc := runcSpec(t)
	strs := func(v any) []string {
		var out []string
		for _, x := range v.([]any) {
			out = append(out, x.(string))
		}
		return out
	}
	rl := runc["linux"].(map[string]any)
	if got, want := s.Linux.ReadonlyPaths, strs(rl["readonlyPaths"]); !sameSet(got, want) {
		t.Errorf("readonlyPaths %v\nrunc's %v", got, want)
	}
	wantMasked := append(strs(rl["maskedPaths"]), "/proc/interrupts", "/sys/devices/virtual/powercap")
	var gotMasked []string
	for _, p := range s.Linux.MaskedPaths {
		if strings.HasPrefix(p, "/sys/devices/system/cpu/cpu") && strings.HasSuffix(p, "/thermal_throttle") {
			if _, err := os.Stat(p); err != nil {
				t.Errorf("masked %s, which the host does not have", p)
			}
			continue
		}
		gotMasked = append(gotMasked, p)
	}
	if !sameSet(gotMasked, wantMasked) {
		t.Errorf("maskedPaths %v\nwant %v", gotMasked, wantMasked)
	}

	var bnd uint64
	for _, c := range s.Process.Capabilities.Bounding {
		n, _ := CapabilityNumber(c)
		bnd |= 1 << n
	}
	if bnd != dockerCapBnd {
		t.Errorf("bounding set %#016x, Docker's is %#016x", bnd, dockerCapBnd)
	}
	for _, c := range strs(runc["process"].(map[string]any)["capabilities"].(map[string]any)["bounding"]) {
		if !slices.Contains(s.Process.Capabilities.Bounding, c) {
			t.Errorf("runc's default %s missing", c)
		}
	}
	if podman := podmanDefaultCaps(t); podman != nil {
		for _, c := range podman {
			if !slices.Contains(s.Process.Capabilities.Bounding, c) {
				t.Errorf("podman's default %s missing", c)
			}
		}
	}
	if s.Process.NoNewPrivileges {
		t.Error("noNewPrivileges must be false by default, as in docker")
	}
	if s.Linux.Seccomp == nil || s.Linux.Seccomp.DefaultAction != specs.ActErrno {
		t.Errorf("seccomp: want Docker's default profile (default action ERRNO), got %+v", s.Linux.Seccomp)
	}

	// Mounts: runc's, /proc with Docker's options.
	runcMounts := runc["mounts"].([]any)
	for _, m := range runcMounts {
		mm := m.(map[string]any)
		if mm["destination"] == "/proc" {
			mm["options"] = []any{"nosuid", "noexec", "nodev"}
		}
	}
	if got := asJSON(t, map[string]any{"m": s.Mounts})["m"]; !reflect.DeepEqual(got, any(runcMounts)) {
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(runcMounts)
		t.Errorf("mounts\n got %s\nwant %s", g, w)
	}
}

func sameSet(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}

// podmanDefaultCaps reads default_capabilities from containers-common's
// containers.conf, if installed.
func podmanDefaultCaps(t *testing.T) []string {
	f, err := os.Open("/usr/share/containers/containers.conf")
	if err != nil {
		return nil
	}
	defer f.Close()
	var caps []string
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "default_capabilities"):
			in = true
		case in && line == "]":
			return caps
		case in && strings.HasPrefix(line, `"`):
			caps = append(caps, "CAP_"+strings.Trim(line, `",`))
		}
	}
	return nil
}

func TestFromImagePrivileged(t *testing.T) {
	s, err := FromImage(ImageConfig{Cmd: []string{"/app"}}, "", Overrides{Privileged: true, NoNewPrivileges: true, DropCaps: []string{"SYS_MODULE"}})
	if err != nil {
		t.Fatal(err)
	}
	want := slices.DeleteFunc(kernelCapabilities(), func(c string) bool { return c == "CAP_SYS_MODULE" })
	if !slices.Equal(s.Process.Capabilities.Bounding, want) || !slices.Equal(s.Process.Capabilities.Effective, want) {
		t.Errorf("privileged capabilities %v", s.Process.Capabilities)
	}
	if s.Linux.Seccomp != nil || s.Linux.MaskedPaths != nil || s.Linux.ReadonlyPaths != nil || s.Process.NoNewPrivileges {
		t.Errorf("privileged keeps confinement: seccomp %v masked %v ro %v nnp %v",
			s.Linux.Seccomp != nil, s.Linux.MaskedPaths, s.Linux.ReadonlyPaths, s.Process.NoNewPrivileges)
	}
	for _, m := range s.Mounts {
		if (m.Destination == "/sys" || m.Destination == "/sys/fs/cgroup") && slices.Contains(m.Options, "ro") {
			t.Errorf("%s still read-only", m.Destination)
		}
	}
	if d := s.Linux.Resources.Devices; len(d) != 1 || !d[0].Allow || d[0].Access != "rwm" {
		t.Errorf("device cgroup %+v, want allow all", d)
	}
	var st os.FileInfo
	if st, err = os.Stat("/dev/null"); err == nil && st.Mode()&os.ModeCharDevice != 0 {
		i := slices.IndexFunc(s.Linux.Devices, func(d specs.LinuxDevice) bool { return d.Path == "/dev/null" })
		if i < 0 {
			t.Fatalf("host /dev/null not in linux.devices")
		}
		if d := s.Linux.Devices[i]; d.Type != "c" || d.Major != 1 || d.Minor != 3 {
			t.Errorf("/dev/null = %+v", d)
		}
	}
	for _, d := range s.Linux.Devices {
		if strings.HasPrefix(d.Path, "/dev/pts/") || d.Path == "/dev/console" || d.Path == "/dev/ptmx" {
			t.Errorf("%s must be left to the runtime", d.Path)
		}
	}
	// The unprivileged default allows no device beyond the runtime's.
	u, _ := FromImage(ImageConfig{Cmd: []string{"/app"}}, "", Overrides{})
	if len(u.Linux.Devices) != 0 || u.Linux.Resources.Devices[0].Allow {
		t.Errorf("unprivileged devices %v %v", u.Linux.Devices, u.Linux.Resources.Devices)
	}
}

func TestFromImageSeccompChoices(t *testing.T) {
	img := ImageConfig{Cmd: []string{"/app"}}
	s, _ := FromImage(img, "", Overrides{SeccompUnconfined: true})
	if s.Linux.Seccomp != nil {
		t.Error("unconfined still has a profile")
	}
	custom := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow}
	s, _ = FromImage(img, "", Overrides{Seccomp: custom})
	if s.Linux.Seccomp != custom {
		t.Error("custom profile not used")
	}
	s, _ = FromImage(img, "", Overrides{NoNewPrivileges: true, ReadOnlyRoot: true, Terminal: true, Hostname: "h",
		Sysctl: map[string]string{"net.ipv4.ip_forward": "1"}})
	if !s.Process.NoNewPrivileges || !s.Root.Readonly || !s.Process.Terminal || s.Hostname != "h" || s.Linux.Sysctl["net.ipv4.ip_forward"] != "1" {
		t.Errorf("overrides not applied: %+v %+v", s.Process, s.Root)
	}
	if s.Root.Path != "rootfs" {
		t.Errorf("root.path %q without rootfs", s.Root.Path)
	}
}

// TestFromImageRoundTrip: the config survives JSON and passes the same
// Parse (decode + Validate) that `hako create` uses.
func TestFromImageRoundTrip(t *testing.T) {
	rootfs := imageRootfs(t)
	for _, o := range []Overrides{
		{},
		{User: "alice", Terminal: true, Hostname: "x", AddCaps: []string{"SYS_PTRACE"}, Volumes: VolumesTmpfs},
		{Privileged: true},
	} {
		img := ImageConfig{Entrypoint: []string{"/init"}, Cmd: []string{"run"}, Env: []string{"A=1"},
			Volumes: map[string]struct{}{"/data": {}}, Labels: map[string]string{"a": "b"}, StopSignal: "SIGINT"}
		s, err := FromImage(img, rootfs, o)
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Parse(b)
		if err != nil {
			t.Fatalf("Parse of FromImage's config: %v", err)
		}
		if !reflect.DeepEqual(asJSON(t, back), asJSON(t, s)) {
			t.Errorf("round trip changed the config")
		}
		if back.Root.Path != rootfs {
			t.Errorf("root.path %q", back.Root.Path)
		}
	}
}

// TestFromImageRuns runs FromImage's config in a real container (as root)
// with Debian's runc and, when built, <repo>/bin/hako, and checks from
// inside what docker users expect: the resolved ids and groups, HOME, cwd,
// Docker's bounding set (effective only for root: execve clears it for
// other users), nothing inheritable or ambient, no_new_privs off, a
// seccomp filter on, /proc/interrupts masked and /proc/sys read-only.
func TestFromImageRuns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	runtimes := map[string]string{}
	if p, err := exec.LookPath("runc"); err == nil {
		runtimes["runc"] = p
	}
	if p, err := filepath.Abs("../../bin/hako"); err == nil {
		if _, err := os.Stat(p); err == nil {
			runtimes["hako"] = p
		}
	}
	if len(runtimes) == 0 {
		t.Skip("neither runc nor bin/hako")
	}
	script := `id -u; id -g; id -G; pwd; echo "$HOME $FOO"
grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status | tr -d '\t'
wc -c < /proc/interrupts
echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null && echo sys-writable || echo sys-ro`
	for _, tc := range []struct {
		user string
		want string
	}{
		{"", "0\n0\n0 10\n/etc\n/root bar\nCapInh:0000000000000000\nCapPrm:00000000a80425fb\nCapEff:00000000a80425fb\n" +
			"CapBnd:00000000a80425fb\nCapAmb:0000000000000000\nNoNewPrivs:0\nSeccomp:2\n0\nsys-ro\n"},
		{"app", "1234\n1234\n1234 777\n/etc\n/home/app bar\nCapInh:0000000000000000\nCapPrm:0000000000000000\nCapEff:0000000000000000\n" +
			"CapBnd:00000000a80425fb\nCapAmb:0000000000000000\nNoNewPrivs:0\nSeccomp:2\n0\nsys-ro\n"},
	} {
		for name, bin := range runtimes {
			t.Run(name+"/"+cmp.Or(tc.user, "root"), func(t *testing.T) {
				bundle := t.TempDir()
				rootfs := filepath.Join(bundle, "rootfs")
				if err := testenv.BusyboxRootfs(rootfs); err != nil {
					t.Fatal(err)
				}
				f, err := os.OpenFile(filepath.Join(rootfs, "etc/passwd"), os.O_APPEND|os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				f.WriteString("app:x:1234:1234::/home/app:/bin/sh\n")
				f.Close()
				writeRootfs(t, rootfs, map[string]string{"etc/group": "root:x:0:\nwheel:x:10:root\napp:x:1234:\nextra:x:777:app\n"})
				img := ImageConfig{User: tc.user, WorkingDir: "/etc", Env: []string{"FOO=bar"},
					Entrypoint: []string{"/bin/sh", "-c"}, Cmd: []string{script}}
				s, err := FromImage(img, rootfs, Overrides{})
				if err != nil {
					t.Fatal(err)
				}
				b, err := json.Marshal(s)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o644); err != nil {
					t.Fatal(err)
				}
				id := fmt.Sprintf("fromimage-%d", time.Now().UnixNano())
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				cmd := exec.CommandContext(ctx, bin, "--root", t.TempDir(), "run", "--bundle", bundle, id)
				var stdout, stderr strings.Builder
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				if err := cmd.Run(); err != nil {
					t.Fatalf("%s run: %v\n%s%s", name, err, stdout.String(), stderr.String())
				}
				if got := stdout.String(); got != tc.want {
					t.Errorf("inside the container:\n%s\nwant:\n%s", got, tc.want)
				}
			})
		}
	}
}
