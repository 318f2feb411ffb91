package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// readyPoll is how often the peers role retries the control API while the
// gateway process starts (there is no event across processes to wait on).
const readyPoll = 100 * time.Millisecond

// ctlClient is the peers role's side of the gateway's control API.
type ctlClient struct {
	base string
	hc   *http.Client
}

func newCtlClient(addr string, parallel int) *ctlClient {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = parallel + 2
	return &ctlClient{base: "http://" + addr, hc: &http.Client{Transport: tr}}
}

func (c *ctlClient) close() { c.hc.CloseIdleConnections() }

// do sends in (JSON, if not nil) and decodes a JSON reply into out (if not nil).
func (c *ctlClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(msg))
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode reply: %w", method, path, err)
	}
	return nil
}

func (c *ctlClient) stats(ctx context.Context, gc bool) (gatewayStats, error) {
	var st gatewayStats
	path := "/stats"
	if gc {
		path += "?gc=1"
	}
	return st, c.do(ctx, http.MethodGet, path, nil, &st)
}

// waitReady retries GET /stats until the gateway answers or ctx ends.
func (c *ctlClient) waitReady(ctx context.Context) error {
	for {
		_, err := c.stats(ctx, false)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gateway control api not ready: %w", err)
		case <-time.After(readyPoll):
		}
	}
}

func bridgePath(id, op string) string {
	p := "/bridges/" + url.PathEscape(id)
	if op != "" {
		p += "/" + op
	}
	return p
}
