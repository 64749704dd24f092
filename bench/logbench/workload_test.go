package logbench

import (
	"slices"
	"testing"
	"time"
)

// Every engine runs both shapes to a count of items, with no error, and the
// figures are consistent. Nothing here is timed.
func TestRunEveryEngine(t *testing.T) {
	master := Shape{Name: "m", Producers: 3, PutBatch: 100, Payload: 8, Slaves: 4, SettleBatch: 64, ReplySize: 5, ReaderMax: 4096}
	issue := Shape{Name: "i", Writers: 3, Batch: 64, RecordSize: 24}
	serial := issue
	serial.Serial = true
	for _, sh := range []Shape{master, issue, serial} {
		engines := append(slices.Clone(Engines), "raftwalcmd", "raft1pre")
		for _, e := range engines {
			t.Run(sh.Name+"/"+e, func(t *testing.T) {
				r := Run(sh, e, t.TempDir(), RunOpts{Duration: 10 * time.Minute, MaxItems: 3000})
				if r.Error != "" {
					t.Fatal(r.Error)
				}
				if r.Items < 3000 || r.Groups == 0 || r.Commands == 0 || r.Bytes == 0 {
					t.Fatalf("items %d groups %d commands %d bytes %d", r.Items, r.Groups, r.Commands, r.Bytes)
				}
				if r.Sync.N == 0 {
					t.Fatalf("no sync recorded")
				}
				wait := r.PutWait
				if sh.Issue() {
					wait = r.BatchWait
				}
				if wait.N == 0 || wait.P50 > wait.P99 || wait.P99 > wait.Max {
					t.Fatalf("wait distribution %+v", wait)
				}
			})
		}
	}
}
