package rootfs

import (
	"strings"

	"golang.org/x/sys/unix"
)

// mountOpts is one spec mount's options, sorted by who applies them. With the
// new mount API there are three layers, and runc's single MS_* bitmask is
// split accordingly:
//   - per-mount attributes (mount_setattr / fsmount): ro, nosuid, nodev,
//     noexec, atime family, nodiratime, nosymfollow;
//   - superblock flags (fsconfig FSCONFIG_SET_FLAG on a new filesystem):
//     ro, sync, dirsync, mand, lazytime;
//   - filesystem data (fsconfig key=value), everything not recognised.
type mountOpts struct {
	bind, rbind bool
	remount     bool
	tmpcopyup   bool
	// idmap: an id-mapped mount ("idmap"); ridmap: of every mount of the
	// tree ("ridmap"). The runtime makes it (OpenIDMapped), not init.
	idmap, ridmap bool

	// attr applies to the top mount only, rattr to every mount in the tree
	// (the "r"-prefixed options of runtime-spec "Mounts": rro, rnosuid, ...).
	attr, rattr attrChange

	// propagation is one of MS_SHARED, MS_SLAVE, MS_PRIVATE, MS_UNBINDABLE
	// (0 = leave as is); propRec applies it to the whole tree.
	propagation uint64
	propRec     bool

	sbFlags []string // fsconfig flags for a new superblock
	data    []string // filesystem-specific options, in order
}

// attrChange is a pair of MOUNT_ATTR_* masks: set these, clear those.
type attrChange struct {
	set, clr uint64
}

func (a attrChange) empty() bool { return a.set == 0 && a.clr == 0 }

func (a *attrChange) add(set, clr uint64) {
	a.set = a.set&^clr | set
	a.clr = a.clr&^set | clr
}

// atime sets the three-valued atime field: the kernel wants MOUNT_ATTR__ATIME
// in attr_clr whenever one of its values is set.
func (a *attrChange) atime(v uint64) {
	a.set = a.set&^unix.MOUNT_ATTR__ATIME | v
	a.clr |= unix.MOUNT_ATTR__ATIME
}

func (a *attrChange) apply(set, clr uint64, atime bool) {
	if atime {
		a.atime(set)
	} else {
		a.add(set, clr)
	}
}

func (a attrChange) mountAttr() *unix.MountAttr {
	return &unix.MountAttr{Attr_set: a.set, Attr_clr: a.clr}
}

// attrOptions are the per-mount flags of runc's option table, by name:
// set, clear, and whether the option is an atime value.
var attrOptions = map[string]struct {
	set, clr uint64
	atime    bool
}{
	"ro":            {set: unix.MOUNT_ATTR_RDONLY},
	"rw":            {clr: unix.MOUNT_ATTR_RDONLY},
	"nosuid":        {set: unix.MOUNT_ATTR_NOSUID},
	"suid":          {clr: unix.MOUNT_ATTR_NOSUID},
	"nodev":         {set: unix.MOUNT_ATTR_NODEV},
	"dev":           {clr: unix.MOUNT_ATTR_NODEV},
	"noexec":        {set: unix.MOUNT_ATTR_NOEXEC},
	"exec":          {clr: unix.MOUNT_ATTR_NOEXEC},
	"nodiratime":    {set: unix.MOUNT_ATTR_NODIRATIME},
	"diratime":      {clr: unix.MOUNT_ATTR_NODIRATIME},
	"nosymfollow":   {set: unix.MOUNT_ATTR_NOSYMFOLLOW},
	"symfollow":     {clr: unix.MOUNT_ATTR_NOSYMFOLLOW},
	"relatime":      {set: unix.MOUNT_ATTR_RELATIME, atime: true},
	"noatime":       {set: unix.MOUNT_ATTR_NOATIME, atime: true},
	"strictatime":   {set: unix.MOUNT_ATTR_STRICTATIME, atime: true},
	"atime":         {set: unix.MOUNT_ATTR_RELATIME, atime: true},    // "do not use noatime": the kernel default
	"norelatime":    {set: unix.MOUNT_ATTR_STRICTATIME, atime: true}, // mount(8): do not use relatime
	"nostrictatime": {set: unix.MOUNT_ATTR_RELATIME, atime: true},    // mount(8): back to the default
}

// sbOptions map to superblock flags of a new filesystem. The negative ones
// are the defaults of a fresh superblock and so need nothing; on a bind mount
// superblock flags cannot change (as with MS_BIND|MS_REMOUNT) and are ignored.
var sbOptions = map[string]string{
	"ro": "ro", "sync": "sync", "dirsync": "dirsync", "mand": "mand", "lazytime": "lazytime",
	"rw": "", "async": "", "nomand": "", "nolazytime": "",
	"silent": "", "loud": "", "iversion": "", "noiversion": "", "defaults": "",
}

var propagationOptions = map[string]struct {
	flag uint64
	rec  bool
}{
	"private":     {unix.MS_PRIVATE, false},
	"rprivate":    {unix.MS_PRIVATE, true},
	"shared":      {unix.MS_SHARED, false},
	"rshared":     {unix.MS_SHARED, true},
	"slave":       {unix.MS_SLAVE, false},
	"rslave":      {unix.MS_SLAVE, true},
	"unbindable":  {unix.MS_UNBINDABLE, false},
	"runbindable": {unix.MS_UNBINDABLE, true},
}

// parseOptions sorts a spec mount's options (runtime-spec config.md "Mounts",
// config-linux.md "Mount Propagation") into a mountOpts.
func parseOptions(options []string) (mountOpts, error) {
	var o mountOpts
	for _, opt := range options {
		if a, ok := attrOptions[opt]; ok {
			o.attr.apply(a.set, a.clr, a.atime)
			if sb := sbOptions[opt]; sb != "" { // "ro" is also a superblock flag
				o.sbFlags = append(o.sbFlags, sb)
			}
			continue
		}
		// Recursive attributes (runtime-spec v1.1: "rro", "rnosuid", ...),
		// applied with mount_setattr(AT_RECURSIVE).
		if a, ok := attrOptions[strings.TrimPrefix(opt, "r")]; ok && strings.HasPrefix(opt, "r") {
			o.rattr.apply(a.set, a.clr, a.atime)
			continue
		}
		if sb, ok := sbOptions[opt]; ok {
			if sb != "" {
				o.sbFlags = append(o.sbFlags, sb)
			}
			continue
		}
		if p, ok := propagationOptions[opt]; ok {
			o.propagation, o.propRec = p.flag, p.rec
			continue
		}
		switch opt {
		case "bind":
			o.bind = true
		case "rbind":
			o.bind, o.rbind = true, true
		case "remount":
			o.remount = true
		case "tmpcopyup":
			o.tmpcopyup = true
		case "idmap":
			o.idmap = true
		case "ridmap":
			o.idmap, o.ridmap = true, true
		case "":
		default:
			o.data = append(o.data, opt)
		}
	}
	return o, nil
}
