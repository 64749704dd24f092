//go:build !unix

package fdlimit

func raise() (Limit, error) { return Limit{}, nil }
