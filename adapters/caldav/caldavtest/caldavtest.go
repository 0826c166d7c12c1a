// Package caldavtest runs a real Radicale CalDAV server for tests, on a
// free loopback port with its storage in a temporary folder.
package caldavtest

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The account the test Radicale knows (htpasswd, plain).
const (
	User     = "alice"
	Password = "pw-3f9a-radicale-never-logged"
)

// Radicale is a real Radicale server started for one test.
type Radicale struct {
	// Base is the server's root, http://127.0.0.1:port.
	Base string
}

// Start runs Debian's radicale with htpasswd (plain) auth and waits until
// it answers; it stops when the test ends. It skips the test when radicale
// is not installed.
func Start(t testing.TB) *Radicale {
	t.Helper()
	bin, err := exec.LookPath("radicale")
	if err != nil {
		t.Skip("radicale is not installed (apt-get install -y -q radicale): skipping the real CalDAV server test")
	}
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	users := filepath.Join(dir, "users")
	if err := os.WriteFile(users, []byte(User+":"+Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "config")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`[server]
hosts = %s
[auth]
type = htpasswd
htpasswd_filename = %s
htpasswd_encryption = plain
delay = 0
[rights]
type = owner_only
[storage]
filesystem_folder = %s
[web]
type = none
[logging]
level = warning
`, addr, users, filepath.Join(dir, "collections"))), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cmd := exec.Command(bin, "-C", conf)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("radicale output:\n%s", logs.String())
		}
	})
	r := &Radicale{Base: "http://" + addr}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(r.Base + "/.well-known/caldav")
		if err == nil {
			resp.Body.Close()
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("radicale does not answer: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Do sends one request as User and fails the test unless the status is
// one of want.
func (r *Radicale) Do(t testing.TB, method, path, body string, header map[string]string, want ...int) {
	t.Helper()
	req, err := http.NewRequest(method, r.Base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(User, Password)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if !slices.Contains(want, resp.StatusCode) {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, got)
	}
}

// MkCalendar creates a calendar collection at path.
func (r *Radicale) MkCalendar(t testing.TB, path string) {
	t.Helper()
	r.Do(t, "MKCALENDAR", path, "", nil, http.StatusCreated)
}

// Put stores an iCalendar object at path, its lines ended by CRLF.
func (r *Radicale) Put(t testing.TB, path, ics string) {
	t.Helper()
	ics = strings.ReplaceAll(strings.TrimSpace(ics), "\n", "\r\n") + "\r\n"
	r.Do(t, "PUT", path, ics, map[string]string{"Content-Type": "text/calendar; charset=utf-8"}, http.StatusCreated, http.StatusNoContent, http.StatusOK)
}

// Delete removes the object at path.
func (r *Radicale) Delete(t testing.TB, path string) {
	t.Helper()
	r.Do(t, "DELETE", path, "", nil, http.StatusOK, http.StatusNoContent)
}
