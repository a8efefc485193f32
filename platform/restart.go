package platform

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
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
func restart(ln net.Listener, service string, log *slog.Logger) (int, error) {
	type filer interface{ File() (*os.File, error) }
	fl, ok := ln.(filer)
	if !ok {
		return 0, fmt.Errorf("restart: listener %T cannot be passed on", ln)
	}
	lf, err := fl.File()
	if err != nil {
		return 0, fmt.Errorf("restart: %w", err)
	}
	defer lf.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("restart: %w", err)
	}
	defer r.Close()

	exe, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("restart: %w", err)
	}
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Env = append(os.Environ(),
		"LISTEN_FDS=1", "LISTEN_FDNAMES="+service, envListenPIDSelf+"=1", envReadyFD+"=4")
	if unlinks(ln) {
		cmd.Env = append(cmd.Env, envUnlink+"=1")
	}
	cmd.ExtraFiles = []*os.File{lf, w} // fd 3: the listener, fd 4: ready
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		w.Close()
		return 0, fmt.Errorf("restart: start successor: %w", err)
	}
	w.Close()
	pid := cmd.Process.Pid
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(r).ReadString('\n')
		if err == nil && line != "ready\n" {
			err = errors.New("unexpected readiness message")
		}
		ready <- err
	}()
	select {
	case err := <-ready:
		if err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			return 0, fmt.Errorf("restart: successor %d did not start: %w", pid, err)
		}
	case <-time.After(DefaultRestartTimeout):
		cmd.Process.Kill()
		cmd.Wait()
		return 0, fmt.Errorf("restart: successor %d not ready after %v", pid, DefaultRestartTimeout)
	}
	cmd.Process.Release() // it outlives this process
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
