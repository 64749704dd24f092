package bench

import (
	"bytes"
	"os"
	"testing"
)

func TestDiskUsage(t *testing.T) {
	dir := t.TempDir()
	data := bytes.Repeat([]byte("not zeros, "), 10000) // 110,000 bytes
	if err := os.WriteFile(dir+"/a", data[:100000], 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir+"/sub", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/sub/b", data[:50000], 0o644); err != nil {
		t.Fatal(err)
	}
	n, err := diskUsage(dir)
	// Allocated blocks: at least the bytes written (unless the file system
	// compresses), and not far above.
	if err != nil || n < 150000 || n > 1<<20 {
		t.Errorf("diskUsage = %d, %v", n, err)
	}
}
