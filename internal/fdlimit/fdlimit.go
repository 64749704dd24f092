// Package fdlimit reads and raises the process's limit on open files,
// which bounds the connections a server can hold.
package fdlimit

// Limit is the open-file limit: Soft is enforced, Hard is as far as an
// unprivileged process may raise Soft.
type Limit struct {
	Soft, Hard uint64
	// Raised tells that Raise moved Soft up to Hard.
	Raised bool
	// Known is false where the system has no such limit to read.
	Known bool
}

// Raise raises the soft limit to the hard one, as servers commonly do (Go
// already does it at start on most systems; then Raise finds nothing to
// do), and returns the limit in force.
func Raise() (Limit, error) { return raise() }
