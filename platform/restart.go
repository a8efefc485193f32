package platform

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// DefaultRestartTimeout is how long a SIGHUP restart waits for the successor
// to be ready before it gives up and keeps serving.
const DefaultRestartTimeout = 30 * time.Second

// Variables between a process and the successor it starts on SIGHUP.
const (
	envListenPIDSelf = "FLOTILLA_LISTEN_PID_SELF" // LISTEN_PID is the successor's own
	envReadyFD       = "FLOTILLA_READY_FD"        // write "ready" here once serving
	envUnlink        = "FLOTILLA_UNLINK_SOCKET"   // the socket file is ours to remove
)

// DefaultRestartGrace is how long a process that handed its socket to a
// successor keeps its open connections, answering each next request with
// "Connection: close", before it closes the idle ones. Clients in the
// middle of a stream of requests thus move to the successor without
// racing a closed connection.
const DefaultRestartGrace = 2 * time.Second

// adoptInherited makes a successor started by restart accept the listener
// it was passed: the parent cannot know the child's pid in advance, as
// systemd does, so it asks the child to claim LISTEN_FDS for itself.
func adoptInherited() {
	if os.Getenv(envListenPIDSelf) == "1" {
		os.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
		os.Unsetenv(envListenPIDSelf)
	}
}

// unlinks reports whether ln removes its socket file when closed: it was
// made by this process (or a predecessor), not passed by systemd.
func unlinks(ln net.Listener) bool {
	_, ok := ln.(*net.UnixListener)
	return ok && os.Getenv(envUnlink) != "0"
}

// ownSocket makes an inherited unix listener remove its socket file on
// close when a predecessor made it, as the first process would have.
func ownSocket(ln net.Listener) {
	if ul, ok := ln.(*net.UnixListener); ok {
		inheritedFromUs := os.Getenv(envUnlink) == "1"
		ul.SetUnlinkOnClose(inheritedFromUs)
		if !inheritedFromUs {
			os.Setenv(envUnlink, "0") // systemd's socket: never ours to remove
		}
	}
}

// signalReady tells the process that started this one on SIGHUP that it
// serves.
func signalReady() {
	fd, err := strconv.Atoi(os.Getenv(envReadyFD))
	os.Unsetenv(envReadyFD)
	if err != nil || fd < 3 {
		return
	}
	f := os.NewFile(uintptr(fd), "ready")
	fmt.Fprintln(f, "ready")
	f.Close()
}

// restart starts a successor with the listening socket inherited through
// the LISTEN_FDS protocol, waits until it serves, and tells systemd its pid
// when running under it. On success the caller drains and exits; on error
// it keeps serving.
//
// The listener's own descriptor is handed to the successor with fork and
// exec, not through os/exec: os/exec takes an *os.File's Fd, which puts the
// socket into blocking mode, and the mode belongs to the socket, shared by
// both processes. This process's accept loop would then block in the
// kernel after its next connection, and its drain would wait for one more
// connection that may never come.
func restart(ln net.Listener, service string, log *slog.Logger) (int, error) {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return 0, fmt.Errorf("restart: listener %T cannot be passed on", ln)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("restart: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("restart: %w", err)
	}
	defer r.Close()
	exe, err := os.Executable()
	if err != nil {
		w.Close()
		return 0, fmt.Errorf("restart: %w", err)
	}
	env := append(os.Environ(),
		"LISTEN_FDS=1", "LISTEN_FDNAMES="+service, envListenPIDSelf+"=1", envReadyFD+"=4")
	if unlinks(ln) {
		env = append(env, envUnlink+"=1")
	}
	var pid int
	var forkErr error
	err = raw.Control(func(fd uintptr) {
		// fd 3: the listener, fd 4: ready. The pipe's write end is the
		// child's alone; its mode does not matter here.
		files := []uintptr{os.Stdin.Fd(), os.Stdout.Fd(), os.Stderr.Fd(), fd, w.Fd()}
		pid, forkErr = syscall.ForkExec(exe, os.Args, &syscall.ProcAttr{Env: env, Files: files})
	})
	w.Close()
	if err == nil {
		err = forkErr
	}
	if err != nil {
		return 0, fmt.Errorf("restart: start successor: %w", err)
	}
	proc, err := os.FindProcess(pid)
	if err != nil {
		return 0, fmt.Errorf("restart: successor %d: %w", pid, err)
	}
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(r).ReadString('\n')
		if err == nil && line != "ready\n" {
			err = errors.New("unexpected readiness message")
		}
		ready <- err
	}()
	fail := func(format string, args ...any) (int, error) {
		proc.Kill()
		proc.Wait()
		return 0, fmt.Errorf(format, args...)
	}
	select {
	case err := <-ready:
		if err != nil {
			return fail("restart: successor %d did not start: %w", pid, err)
		}
	case <-time.After(DefaultRestartTimeout):
		return fail("restart: successor %d not ready after %v", pid, DefaultRestartTimeout)
	}
	proc.Release() // it outlives this process
	// Under systemd (NOTIFY_SOCKET set); elsewhere SdNotify does nothing.
	if _, err := daemon.SdNotify(false, "MAINPID="+strconv.Itoa(pid)); err != nil {
		log.Warn("sd_notify MAINPID", "err", err)
	}
	// The successor now owns the socket file of a unix listener.
	if ul, ok := ln.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(false)
	}
	return pid, nil
}
