package bridge_test

import (
	"bytes"
	"context"
	"image/png"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStatusPageInChromium renders the status page of a running bridge
// (a call under way, a change Graph refused) in a real headless Chromium
// and checks that the screenshot is a full, non-blank image. Chromium has
// no login to type into, so a loopback proxy logs in once and adds the
// session cookie to its requests. With STATUS_PAGE_SCREENSHOT set, the
// screenshot is also written there (docs/status-page.png is made so).
func TestStatusPageInChromium(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed (Debian package chromium)")
	}
	b := startBridge(t, withAdminListen(testConfig(t))+"presence: {observe_interval: 0s}\n") // the one failure is for a write
	postEvent(t, b, callEvent("shot-1", "ext:1001", "CA42", "active", time.Now().Add(-3*time.Minute)))
	waitPresence(t, b, aliceID, "Busy/InACall", 0)
	b.Emulator().FailNext(1, http.StatusBadRequest)
	postEvent(t, b, callEvent("shot-2", "bob@contoso.example", "CB7", "active", time.Now()))
	waitDeadLetters(t, b, 1)
	waitFor(t, "alice's history", func() (bool, string) {
		_, v := userView(t, b, "alice@contoso.example")
		return len(v.History) >= 2, "too short"
	})

	ops, _ := url.Parse("http://" + b.AdminAddr())
	login, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).
		PostForm(ops.String()+"/login", url.Values{"token": {"admin-token"}})
	if err != nil {
		t.Fatal(err)
	}
	login.Body.Close()
	cookies := login.Cookies()
	if len(cookies) != 1 {
		t.Fatalf("login: %d, cookies %v", login.StatusCode, cookies)
	}
	proxy := httputil.NewSingleHostReverseProxy(ops)
	director := proxy.Director
	proxy.Director = func(r *http.Request) { director(r); r.AddCookie(cookies[0]) }
	front := httptest.NewServer(proxy)
	defer front.Close()

	out := filepath.Join(t.TempDir(), "status.png")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--hide-scrollbars", "--user-data-dir="+t.TempDir(), "--screenshot="+out, "--window-size=1280,900",
		front.URL+"/?tenant=contoso.example&user=alice%40contoso.example")
	if output, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, output)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if size := img.Bounds().Size(); size.X != 1280 || size.Y != 900 {
		t.Fatalf("screenshot is %v, want 1280x900", size)
	}
	colours := map[uint32]bool{}
	for y := 0; y < 900; y += 7 {
		for x := 0; x < 1280; x += 7 {
			r, g, b, _ := img.At(x, y).RGBA()
			colours[r>>8<<16|g>>8<<8|b>>8] = true
		}
	}
	if len(colours) < 10 {
		t.Fatalf("screenshot has %d colours: blank", len(colours))
	}
	if dest := os.Getenv("STATUS_PAGE_SCREENSHOT"); dest != "" {
		if err := os.WriteFile(dest, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The page Chromium saw is the status page, not the login form.
	resp, err := http.Get(front.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var page bytes.Buffer
	_, _ = page.ReadFrom(resp.Body)
	if !strings.Contains(page.String(), `id="tenants"`) {
		t.Fatal("the proxy is not logged in")
	}
}
