package wal

// Admission (design §3.6): the caller asks before it applies a command,
// since a command applied must then be logged. Puts are refused first,
// when the next segment cannot be made; other commands (settles, nacks,
// returns, which free space rather than take it) go on into the rest of
// the active segment and the reserve; once the reserve is in use, or a
// write fails, every change is refused. Both checks are one atomic load.

type admission struct{ put, all error }

// AdmitPut says whether a command that adds data (a put) may be applied
// and appended now: nil, or an error that is ErrNoSpace (disk full),
// ErrUnavailable (the log cannot be written) or ErrClosed, with a message
// for the client.
func (l *Log) AdmitPut() error {
	if a := l.adm.Load(); a != nil {
		return a.put
	}
	return nil
}

// Admit says whether any other command may be applied and appended now.
func (l *Log) Admit() error {
	if a := l.adm.Load(); a != nil {
		return a.all
	}
	return nil
}

// updateAdmission recomputes both answers from the log's state; it runs
// whenever that changes (rarely).
func (l *Log) updateAdmission() {
	l.stateMu.Lock()
	defer l.stateMu.Unlock()
	var a *admission
	switch {
	case l.closingFlag.Load():
		a = &admission{put: ErrClosed, all: ErrClosed}
	case l.writeErr != nil:
		a = &admission{put: l.writeErr, all: l.writeErr}
	case l.prepErr != nil:
		a = &admission{put: &SegmentError{Dir: l.dir, Need: l.opts.SegmentSize, Err: l.prepErr}}
		if len(l.ready) == 0 {
			a.all = &SegmentError{Dir: l.dir, Need: l.opts.SegmentSize, Err: l.prepErr, ReserveUsed: true}
			a.put = a.all
		}
	}
	l.adm.Store(a)
	close(l.changed)
	l.changed = make(chan struct{})
}

// changedCh is closed at the next change of admission or of the
// preparer's state.
func (l *Log) changedCh() <-chan struct{} {
	l.stateMu.Lock()
	defer l.stateMu.Unlock()
	return l.changed
}

// setPrepErr records the preparer's state, logging its changes.
func (l *Log) setPrepErr(err error) {
	l.stateMu.Lock()
	was := l.prepErr
	l.prepErr = err
	l.stateMu.Unlock()
	switch {
	case err != nil && (was == nil || was.Error() != err.Error()):
		l.log.Warn("cannot make the next log segment; puts are refused until it can", "error", err, "retry_in", prepareRetry)
	case err == nil && was != nil:
		l.log.Info("the next log segment is ready; puts are accepted again")
	}
	l.updateAdmission()
}

func (l *Log) prepErrNow() error {
	l.stateMu.Lock()
	defer l.stateMu.Unlock()
	return l.prepErr
}

// setWriteErr records the writer's failure (nil: it works again).
func (l *Log) setWriteErr(err error) {
	l.stateMu.Lock()
	l.writeErr = err
	l.stateMu.Unlock()
	l.updateAdmission()
}

func (l *Log) writeErrNow() error {
	l.stateMu.Lock()
	defer l.stateMu.Unlock()
	return l.writeErr
}
