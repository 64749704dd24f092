//go:build unix

package fdlimit

import "syscall"

func raise() (Limit, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return Limit{}, err
	}
	l := Limit{Soft: rl.Cur, Hard: rl.Max, Known: true}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return l, err
		}
		l.Soft, l.Raised = rl.Max, true
	}
	return l, nil
}
