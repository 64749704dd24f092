package bench

import "testing"

func TestMountFSType(t *testing.T) {
	const info = `22 1 254:0 / / rw,relatime shared:1 - ext4 src rw
25 22 0:21 / /proc rw,nosuid shared:12 - proc proc rw
30 22 0:25 / /tmp rw,nosuid shared:5 - tmpfs tmpfs rw
31 30 0:26 / /tmp/my\040disk rw - xfs src rw
32 22 0:27 / /tmpx rw master:3 shared:9 - btrfs src rw
`
	for _, tc := range []struct{ path, want string }{
		{"/", "ext4"},
		{"/home/x", "ext4"},
		{"/tmp", "tmpfs"},
		{"/tmp/distq-bench-1", "tmpfs"},
		{"/tmp/my disk/a", "xfs"},
		{"/tmpx/a", "btrfs"},
		{"/tmpfoo", "ext4"},
	} {
		if got := mountFSType(info, tc.path); got != tc.want {
			t.Errorf("mountFSType(%q) = %q, want %q", tc.path, got, tc.want)
		}
	}
	if got := mountFSType("garbage\n", "/"); got != "" {
		t.Errorf("mountFSType(garbage) = %q", got)
	}
}
