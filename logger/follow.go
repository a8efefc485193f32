package logger

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"time"
)

// fileID is the identity of a file: its device and inode.
type fileID struct{ dev, ino uint64 }

func statID(path string) (fileID, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileID{}, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, errors.New("no inode")
	}
	return fileID{dev: uint64(st.Dev), ino: st.Ino}, nil
}

// followPath makes sure the writer's connection writes the file that the
// Store's path names now. When the file was removed (rm flotilla.db*) or
// replaced (mv, a restore from backup), rows would otherwise go on into a
// file nobody can read, or the log would split in two between the running
// services and those started later. The writer calls it before each batch:
// one stat. On a change it reopens the file at the path, migrating it (or
// creating it) as Open does, and records the reason, which Stats reports
// for a minute.
func (w *writer) followPath() {
	s := w.s
	id, err := statID(s.path)
	if err == nil && id == s.bc.id {
		return
	}
	reason := "replaced"
	if errors.Is(err, fs.ErrNotExist) {
		reason = "removed or moved away"
	}
	// Connections of the pools still have the old file open: let them go,
	// so the next ones open the path again.
	for _, db := range []interface{ SetMaxIdleConns(int) }{s.wdb, s.rdb} {
		db.SetMaxIdleConns(0)
	}
	s.wdb.SetMaxIdleConns(1)
	s.rdb.SetMaxIdleConns(2)
	if _, err := prepareFile(s.path); err != nil {
		s.setErr(fmt.Errorf("the log file was %s; cannot reopen it: %w", reason, err))
		return
	}
	if err := setup(s.wdb, s.path, &s.opts); err != nil {
		s.setErr(fmt.Errorf("the log file was %s; cannot reopen it: %w", reason, err))
		return
	}
	bc, err := openBatchConn(s.path, &s.opts)
	if err != nil {
		s.setErr(fmt.Errorf("the log file was %s; cannot reopen it: %w", reason, explain(s.path, err)))
		return
	}
	old := s.bc
	s.bcMu.Lock()
	s.bc = bc
	s.bcMu.Unlock()
	if s.giveUp.Err() != nil {
		bc.stop() // Close gave up meanwhile
	}
	old.close()
	s.errMu.Lock()
	s.reopenedAt = time.Now()
	s.reopenReason = fmt.Sprintf("the log file %s was %s under the service; reopened it at its path", s.path, reason)
	s.errMu.Unlock()
	s.log.Warn("request log file "+reason+" under the service; reopened at its path", "path", s.path)
}
