package spec

// MaxIDLength bounds container IDs. The ID names a directory under the state
// root, so it must fit in one path component (NAME_MAX, 255 bytes); runc has
// no limit and fails later with ENAMETOOLONG.
const MaxIDLength = 255

// ValidateID checks a container ID the way runc does: one or more of
// [A-Za-z0-9_+.-], and neither "." nor "..", so that the ID is always a
// single harmless path component. Anything else (slashes, NUL, spaces,
// non-ASCII) is refused, as is an ID longer than MaxIDLength. Unlike runc,
// an ID may not start with "-": it could only be passed after "--", and
// every tool that later puts it on a command line (kill scripts, ps, a
// wrapper calling the runtime) would read it as an option.
func ValidateID(id string) error {
	switch {
	case id == "":
		return invalid("container id", "is empty")
	case id == "." || id == "..":
		return invalid("container id", "%q is not allowed", id)
	case id[0] == '-':
		return invalid("container id", "%q starts with \"-\", which command lines read as an option", id)
	case len(id) > MaxIDLength:
		return invalid("container id", "is %d bytes long, the limit is %d", len(id), MaxIDLength)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '_', c == '+', c == '-', c == '.':
		default:
			return invalid("container id", "%q contains %q (allowed: A-Z a-z 0-9 _ + - .)", id, string(rune(c)))
		}
	}
	return nil
}
