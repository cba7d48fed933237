// Package nsenter links the C constructor (nsenter.c) that joins existing
// namespaces before the Go runtime starts. Importing it for side effects is
// all that is needed; the parent drives it through the environment of the
// "hako init" child (see EnvSetns).
package nsenter

/*
#cgo CFLAGS: -Wall -O2
*/
import "C"

// Environment variables read by the constructor.
const (
	EnvSetns   = "_HAKO_SETNS"
	EnvUnshare = "_HAKO_UNSHARE"
	EnvSyncFD  = "_HAKO_SYNCFD"
)
