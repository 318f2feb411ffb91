// Package browsertest is test support for driving callgw's pages in a real
// headless Chromium through chromedp: it starts the browser with the flags
// WebRTC tests need (fake microphone from a WAV file, no autoplay gate, no
// background traffic), waits for data-testid elements and saves screenshots.
// Only tests import it.
package browsertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// DefaultChromium is where Debian installs Chromium.
const DefaultChromium = "/usr/bin/chromium"

// ScreenshotsEnv names the environment variable holding a directory where
// tests save PNG screenshots; unset means no screenshots.
const ScreenshotsEnv = "CALLGW_SCREENSHOTS"

// Options configures Start. The zero value is usable.
type Options struct {
	// ExecPath is the Chromium binary. Default: $CALLGW_CHROMIUM, then
	// DefaultChromium, then "chromium" on $PATH.
	ExecPath string
	// FakeAudioCapture is the absolute path of a WAV file the fake
	// microphone plays (looped). Empty: Chromium's fake device beeps.
	FakeAudioCapture string
	// Width and Height of the window. Default 1280x860.
	Width, Height int
	// Timeout bounds the whole browser's life. Default 2 minutes.
	Timeout time.Duration
	// ExtraFlags are appended to the default flags.
	ExtraFlags map[string]any
}

// Browser is a running headless Chromium.
type Browser struct {
	// Ctx is the first tab's context; pass it to chromedp.Run.
	Ctx     context.Context
	cancel  []context.CancelFunc
	console chan struct{} // closed when the console logger stops
}

// ExecPath resolves the Chromium binary as Options.ExecPath documents, or
// returns "" when none is installed.
func ExecPath(opt string) string {
	for _, p := range []string{opt, os.Getenv("CALLGW_CHROMIUM"), DefaultChromium} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	return ""
}

// Start launches Chromium (skipping the test when it is not installed) and
// registers its shutdown with t.Cleanup.
func Start(t testing.TB, opts Options) *Browser {
	t.Helper()
	exe := ExecPath(opts.ExecPath)
	if exe == "" {
		t.Skip("browsertest: chromium not installed")
	}
	if opts.Width == 0 {
		opts.Width, opts.Height = 1280, 860
	}
	if opts.Timeout == 0 {
		opts.Timeout = 2 * time.Minute
	}
	flags := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(opts.Width, opts.Height),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		// Keep timers and media running at full speed in a headless tab.
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
	}
	if opts.FakeAudioCapture != "" {
		abs, err := filepath.Abs(opts.FakeAudioCapture)
		if err != nil {
			t.Fatalf("browsertest: %v", err)
		}
		if _, err := os.Stat(abs); err != nil {
			t.Fatalf("browsertest: fake audio: %v", err)
		}
		flags = append(flags, chromedp.Flag("use-file-for-fake-audio-capture", abs))
	}
	for k, v := range opts.ExtraFlags {
		flags = append(flags, chromedp.Flag(k, v))
	}
	ctx, cancelT := context.WithTimeout(context.Background(), opts.Timeout)
	actx, cancelA := chromedp.NewExecAllocator(ctx, flags...)
	bctx, cancelB := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	if err := chromedp.Do(bctx); err != nil {
		cancelB()
		cancelA()
		cancelT()
		t.Fatalf("browsertest: start chromium: %v", err)
	}
	b := &Browser{Ctx: bctx, cancel: []context.CancelFunc{cancelB, cancelA, cancelT}, console: make(chan struct{})}
	msgs := chromedp.Console(bctx)
	go func() { // the page's console and exceptions go to the test log
		defer close(b.console)
		for m, err := range msgs {
			if err != nil {
				return
			}
			t.Logf("browser console: %s", m.String())
		}
	}()
	t.Cleanup(b.Close)
	return b
}

// NewTab opens another tab in the same browser; it closes with the browser.
func (b *Browser) NewTab() context.Context {
	ctx, cancel := chromedp.NewContext(b.Ctx)
	b.cancel = append([]context.CancelFunc{cancel}, b.cancel...)
	return ctx
}

// Close stops the browser; it is idempotent.
func (b *Browser) Close() {
	for _, c := range b.cancel {
		c()
	}
	b.cancel = nil
	if b.console != nil {
		<-b.console
		b.console = nil
	}
}

// Sel is the CSS selector of a data-testid.
func Sel(testID string) string { return fmt.Sprintf(`[data-testid=%q]`, testID) }

// WaitVisible waits (bounded by timeout) until the element with testID is visible.
func WaitVisible(ctx context.Context, testID string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(Sel(testID)))); err != nil {
		return fmt.Errorf("browsertest: %s not visible within %v: %w", testID, timeout, err)
	}
	return nil
}

// WaitNotVisible waits (bounded by timeout) until no visible element has testID.
func WaitNotVisible(ctx context.Context, testID string, timeout time.Duration) error {
	return WaitTrue(ctx, fmt.Sprintf(`![...document.querySelectorAll(%q)].some(e => e.offsetParent !== null)`, Sel(testID)), timeout)
}

// Click clicks the first element with testID once it is visible and enabled.
func Click(ctx context.Context, testID string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	sel := Sel(testID) + ":not([disabled])"
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.Click(chromedp.CSS(sel))); err != nil {
		return fmt.Errorf("browsertest: click %s: %w", testID, err)
	}
	return nil
}

// WaitTrue evaluates the JavaScript expression until it is truthy, bounded
// by timeout. Use it for page state that has no DOM event to wait on (such
// as window.callgwTest fields).
func WaitTrue(ctx context.Context, expr string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(timeout))); err != nil {
		return fmt.Errorf("browsertest: waiting for %s: %w", expr, err)
	}
	return nil
}

// Eval evaluates expr and decodes its JSON result into a T.
func Eval[T any](ctx context.Context, expr string) (T, error) {
	return chromedp.Run(ctx, chromedp.Evaluate[T](expr))
}

// Navigate loads url in the tab of ctx.
func Navigate(ctx context.Context, url string) error {
	return chromedp.Do(ctx, chromedp.Navigate(url))
}

// Text returns the text content of the first element with testID.
func Text(ctx context.Context, testID string) (string, error) {
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q)||{}).textContent||""`, Sel(testID))))
	return strings.TrimSpace(s), err
}

// ScreenshotDir returns $CALLGW_SCREENSHOTS ("" when screenshots are off).
func ScreenshotDir() string { return os.Getenv(ScreenshotsEnv) }

// Screenshot saves a full-page PNG named name+".png" in ScreenshotDir; it
// does nothing when screenshots are off.
func Screenshot(ctx context.Context, name string) error {
	dir := ScreenshotDir()
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("browsertest: screenshot dir: %w", err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		return fmt.Errorf("browsertest: screenshot %s: %w", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		return fmt.Errorf("browsertest: screenshot %s: %w", name, err)
	}
	return nil
}

// Type focuses the element with testID and types text into it (a trailing
// "\n" presses Enter).
func Type(ctx context.Context, testID, text string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	sel := chromedp.CSS(Sel(testID))
	if err := chromedp.Do(ctx, chromedp.WaitVisible(sel), chromedp.Focus(sel), chromedp.SendKeys(sel, text)); err != nil {
		return fmt.Errorf("browsertest: type into %s: %w", testID, err)
	}
	return nil
}
