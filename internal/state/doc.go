// Package state is the logged state of a master's queues as a deterministic
// state machine: commands in, state out.
//
// Every change to what a master must keep across a restart (the items of
// each queue, their attempts, errors and retry times, the ids handed out, a
// queue's closing, the producers' put sequences) is a Command. Apply changes
// a Machine by one command and depends on nothing but the command and the
// state: commands carry their own time and ids, and record the outcome the
// live master decided (retry at this time, dead-letter now), never the
// configuration it decided by. So replaying a log rebuilds the same state
// under other flags, and a raft follower applying the same entries holds the
// same state as its leader.
//
// Nothing here reads a clock, takes a lock, uses a channel, draws a random
// number or logs (TestStatePurity checks the imports): the live master
// around the machine does those. Leases, credit, waiters and deliveries are
// not logged state; after a restart every item that was leased is ready
// again.
//
// Every command is idempotent on the state: an insert of an id that is
// present overwrites it with the same content, and settling an absent id is
// a counted no-op. That is what lets a snapshot taken while commands go on
// ("fuzzy") be completed by replaying the log from where it started, and
// lets a salvage replay skip what it cannot read.
//
// The encoding of commands (codec.go) is the format of the log's records,
// and is meant to become raft log entries unchanged.
package state
