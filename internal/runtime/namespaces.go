package runtime

import (
	"fmt"
	"os"

	"github.com/hako-runtime/hako/internal/nsenter"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

var nsFlags = map[specs.LinuxNamespaceType]int{
	specs.PIDNamespace:     unix.CLONE_NEWPID,
	specs.NetworkNamespace: unix.CLONE_NEWNET,
	specs.MountNamespace:   unix.CLONE_NEWNS,
	specs.IPCNamespace:     unix.CLONE_NEWIPC,
	specs.UTSNamespace:     unix.CLONE_NEWUTS,
	specs.UserNamespace:    unix.CLONE_NEWUSER,
	specs.CgroupNamespace:  unix.CLONE_NEWCGROUP,
	specs.TimeNamespace:    unix.CLONE_NEWTIME,
}

// procNames are the /proc/<pid>/ns entries for each type.
var procNames = map[specs.LinuxNamespaceType]string{
	specs.PIDNamespace: "pid", specs.NetworkNamespace: "net", specs.MountNamespace: "mnt",
	specs.IPCNamespace: "ipc", specs.UTSNamespace: "uts", specs.UserNamespace: "user",
	specs.CgroupNamespace: "cgroup", specs.TimeNamespace: "time",
}

// joinOrder: the user namespace first (it grants the privilege to join the
// others), the mount namespace last.
var joinOrder = []specs.LinuxNamespaceType{
	specs.UserNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.NetworkNamespace,
	specs.CgroupNamespace, specs.TimeNamespace, specs.MountNamespace,
}

// nsPlan is how the init child gets its namespaces.
type nsPlan struct {
	cloneFlags   uintptr // created by clone(2)
	unshareFlags int     // created by hako-nsenter after joining (user namespace by path)
	newCgroupNS  bool    // unshared by init after entering the cgroup
	newTimeNS    bool    // unshared by init (clone(2) cannot)
	join         []nsFile
	pidNS        *os.File // joined by the parent thread before clone (pid_for_children)
	newUserNS    bool
}

type nsFile struct {
	typ specs.LinuxNamespaceType
	f   *os.File
}

func (p *nsPlan) close() {
	for _, j := range p.join {
		j.f.Close()
	}
	if p.pidNS != nil {
		p.pidNS.Close()
	}
}

// planNamespaces opens the namespace paths of the spec and splits the new
// ones between clone(2), hako-nsenter (after a user namespace joined by
// path) and init.
func planNamespaces(nss []specs.LinuxNamespace) (_ *nsPlan, err error) {
	p := &nsPlan{}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	byType := map[specs.LinuxNamespaceType]specs.LinuxNamespace{}
	for _, ns := range nss {
		if _, ok := nsFlags[ns.Type]; !ok {
			return nil, fmt.Errorf("linux.namespaces: unknown type %q", ns.Type)
		}
		if _, dup := byType[ns.Type]; dup {
			return nil, fmt.Errorf("linux.namespaces: %s listed twice", ns.Type)
		}
		byType[ns.Type] = ns
	}
	userByPath := byType[specs.UserNamespace].Path != ""
	for _, typ := range joinOrder {
		ns, ok := byType[typ]
		if !ok || ns.Path == "" {
			continue
		}
		f, err := openNamespace(ns)
		if err != nil {
			return nil, err
		}
		p.join = append(p.join, nsFile{typ, f})
	}
	if ns, ok := byType[specs.PIDNamespace]; ok && ns.Path != "" {
		f, err := openNamespace(ns)
		if err != nil {
			return nil, err
		}
		p.pidNS = f
	}
	for typ, ns := range byType {
		if ns.Path != "" {
			continue
		}
		flag := nsFlags[typ]
		switch {
		case typ == specs.CgroupNamespace:
			p.newCgroupNS = true
		case typ == specs.TimeNamespace:
			p.newTimeNS = true
		case typ == specs.UserNamespace:
			p.newUserNS = true
			p.cloneFlags |= uintptr(flag)
		case userByPath && typ != specs.PIDNamespace:
			// Must be owned by the joined user namespace.
			p.unshareFlags |= flag
		default:
			p.cloneFlags |= uintptr(flag)
		}
	}
	if p.newUserNS && len(p.join) > 0 {
		for _, j := range p.join {
			if j.typ != specs.UserNamespace {
				return nil, fmt.Errorf("linux.namespaces: joining the %s namespace by path together with a new user namespace is not supported", j.typ)
			}
		}
	}
	return p, nil
}

func openNamespace(ns specs.LinuxNamespace) (*os.File, error) {
	f, err := os.OpenFile(ns.Path, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("linux.namespaces: open %s namespace %s: %w", ns.Type, ns.Path, err)
	}
	// NS_GET_NSTYPE tells what the file really is (kernel 4.11+), so a
	// path naming the wrong kind of namespace is refused up front.
	t, err := unix.IoctlRetInt(int(f.Fd()), unix.NS_GET_NSTYPE)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("linux.namespaces: %s is not a namespace file: %w", ns.Path, err)
	}
	if t != nsFlags[ns.Type] {
		f.Close()
		return nil, fmt.Errorf("linux.namespaces: %s is not a %s namespace", ns.Path, ns.Type)
	}
	return f, nil
}

// setnsEnv encodes the join list for init (package nsenter): fds numbered
// as they will be in the child.
func setnsEnv(join []nsFile, firstFD int) string {
	joins := make([]nsenter.Join, len(join))
	for i, j := range join {
		joins[i] = nsenter.Join{FD: firstFD + i, Type: nsFlags[j.typ]}
	}
	return nsenter.Encode(joins)
}

// needsHelper reports whether init must be started through hako-nsenter:
// a user or time namespace to join, or namespaces to create after a join.
func needsHelper(join []nsFile, unshare int) bool {
	if unshare != 0 {
		return true
	}
	for _, j := range join {
		if nsenter.NeedsHelper(nsFlags[j.typ]) {
			return true
		}
	}
	return false
}
