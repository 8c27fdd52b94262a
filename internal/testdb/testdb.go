// Package testdb starts throwaway PostgreSQL and MariaDB servers for tests,
// benchmarks and a local development mode.
//
// Every server listens on a free TCP port on 127.0.0.1, uses password
// authentication only (never trust), keeps all of its files in one temporary
// directory under os.TempDir() and removes that directory again on Close.
//
// When the process that started a server dies without calling Close (a test
// binary that panics, times out or is killed), a small watchdog process that
// was started next to the server notices that its parent is gone, kills the
// server and removes the temporary directory, so nothing outlives a crashed
// test binary for more than a few seconds.
//
// Tests usually share one server per test binary:
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		testdb.CloseShared()
//		os.Exit(code)
//	}
//
//	func TestSomething(t *testing.T) {
//		pg := testdb.RequirePostgres(t)
//		...
//	}
package testdb

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// loopback is the only address the servers listen on.
const loopback = "127.0.0.1"

// errNotInstalled marks errors caused by missing server binaries, which make
// tests skip outside CI instead of failing.
var errNotInstalled = errors.New("database server binaries not installed")

// notInstalledError is returned when server binaries cannot be found. Its
// message tells how to install them.
type notInstalledError struct{ msg string }

func (e *notInstalledError) Error() string { return e.msg }

func (e *notInstalledError) Is(target error) bool { return target == errNotInstalled }

// inCI reports whether the CI environment variable says that we run in CI,
// where missing binaries are an error rather than a reason to skip.
func inCI() bool {
	v, err := strconv.ParseBool(strings.TrimSpace(os.Getenv("CI")))
	return err == nil && v
}

// isExecutable reports whether path is a regular file with an execute bit.
func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// pickPort chooses the port for a new server; tests replace it to provoke
// a port collision.
var pickPort = freePort

// freePort asks the kernel for a free TCP port on 127.0.0.1. Another process
// may take the port before the server binds it; callers retry on bind errors.
func freePort() (int, error) {
	l, err := net.Listen("tcp4", loopback+":0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	return port, nil
}

// osUser is an operating-system account the server processes run as.
type osUser struct {
	name     string
	uid, gid uint32
}

// lookupOSUser looks up an OS account by name.
func lookupOSUser(name string) (*osUser, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, err
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %s: bad uid %q", name, u.Uid)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %s: bad gid %q", name, u.Gid)
	}
	return &osUser{name: name, uid: uint32(uid), gid: uint32(gid)}, nil
}

// makeTempRoot creates the temporary directory of one server, mode 0700 and,
// when owner is not nil, owned by owner. It checks that owner can reach it.
func makeTempRoot(prefix string, owner *osUser) (string, error) {
	dir, err := os.MkdirTemp(os.TempDir(), prefix)
	if err != nil {
		return "", fmt.Errorf("create temp dir: %w", err)
	}
	// MkdirTemp may return a relative or symlinked path; servers want an
	// absolute one because they chdir into their data directory.
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		_ = os.RemoveAll(dir)
		return "", fmt.Errorf("chmod temp dir: %w", err)
	}
	if owner != nil {
		if err := os.Chown(dir, int(owner.uid), int(owner.gid)); err != nil {
			_ = os.RemoveAll(dir)
			return "", fmt.Errorf("chown temp dir to %s: %w", owner.name, err)
		}
		// The server user must be able to traverse every parent directory.
		for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
			fi, err := os.Stat(p)
			if err == nil && fi.Mode().Perm()&0o001 == 0 {
				_ = os.RemoveAll(dir)
				return "", fmt.Errorf("OS user %s cannot traverse %s (mode %v): set TMPDIR to a world-traversable directory such as /tmp",
					owner.name, p, fi.Mode().Perm())
			}
			if p == filepath.Dir(p) {
				break
			}
		}
	}
	return dir, nil
}

// childEnv is the environment for server processes: the current one without
// libpq and MySQL client variables that could redirect the tools, and with
// the C locale so that messages are stable English text.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PG") || strings.HasPrefix(k, "MYSQL") ||
			strings.HasPrefix(k, "LC_") || k == "LANG" || k == "LANGUAGE" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LC_ALL=C", "LANG=C")
}

// sysProcAttr returns process attributes that run a child as runAs (when
// not nil).
func sysProcAttr(runAs *osUser) *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{}
	if runAs != nil {
		attr.Credential = &syscall.Credential{Uid: runAs.uid, Gid: runAs.gid}
	}
	return attr
}

// runTool runs a short-lived helper program (initdb, pg_ctl,
// mariadb-install-db) and returns an error that includes its output.
func runTool(cmd *exec.Cmd) error {
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	// If a daemonized grandchild ever kept our pipe open, do not hang.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w\n%s", strings.Join(cmd.Args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// reaperScript is run by /bin/sh next to every server. It blocks reading its
// standard input, a pipe whose only writer is the Go process that started
// the server. The pipe reaches end of file when that process calls Close or
// dies for any reason (even SIGKILL); the script then kills the server, if
// the pid file still names a live process whose command line mentions a path
// inside the temp dir (so a reused pid is never hit), and removes the temp
// dir.
//
// Arguments: $1 pid file, $2 temp dir, $3 first signal (QUIT or TERM).
const reaperScript = `cat >/dev/null 2>&1
alive() {
	[ -r "/proc/$1/cmdline" ] && tr '\000' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$2/"
}
if [ -f "$1" ]; then
	pid=$(head -n 1 "$1" 2>/dev/null)
	case "$pid" in
	''|*[!0-9]*) ;;
	*)
		if alive "$pid" "$2"; then
			kill -"$3" "$pid" 2>/dev/null
			i=0
			while alive "$pid" "$2" && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i+1)); done
			if alive "$pid" "$2"; then kill -KILL "$pid" 2>/dev/null; sleep 0.2; fi
		fi
		;;
	esac
fi
rm -rf -- "$2"
`

// reaper is the watchdog process of one server.
type reaper struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

// startReaper starts the watchdog for a server whose pid file is pidFile and
// whose temporary directory is dir; sig is the signal name sent first.
func startReaper(pidFile, dir, sig string) (*reaper, error) {
	cmd := exec.Command("/bin/sh", "-c", reaperScript, "timebox-testdb-reaper", pidFile, dir, sig)
	// Own process group: a Ctrl-C on the terminal must not kill the watchdog
	// together with the test binary, since cleaning up after that is its job.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Dir = "/"
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("start watchdog: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start watchdog: %w", err)
	}
	return &reaper{cmd: cmd, stdin: stdin}, nil
}

// stop makes the watchdog run its cleanup now (a no-op after Close has done
// the work) and waits for it.
func (r *reaper) stop() {
	if r == nil {
		return
	}
	_ = r.stdin.Close()
	done := make(chan struct{})
	go func() { _ = r.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = r.cmd.Process.Kill()
		<-done
	}
}

// tailFile returns the last n lines of the file at path, reading at most the
// last 256 KiB.
func tailFile(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const maxRead = 256 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > maxRead {
		_, _ = f.Seek(-maxRead, io.SeekEnd)
	}
	b, _ := io.ReadAll(f)
	return lastLines(string(b), n)
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	if n <= 0 {
		return ""
	}
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// fileSize returns the size of the file at path, or 0.
func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// readFrom returns the content of the file at path from offset on.
func readFrom(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(f)
	return string(b)
}
