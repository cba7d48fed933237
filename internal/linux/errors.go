package linux

import "errors"

var errSeccompUnsupported = errors.New("seccomp is not supported yet")
