package cloudapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// maxResponseBytes bounds a Graph answer we read.
const maxResponseBytes = 1 << 20

// Client talks to the Graph API for one business phone number. It is safe
// for concurrent use and holds no goroutines; Close releases idle
// connections of the transport it owns.
type Client struct {
	cfg       Config
	root      string // BaseURL/Version/
	http      *http.Client
	ownsHTTP  bool
	log       *slog.Logger
	m         *Metrics
	closeOnce sync.Once
}

// New validates cfg, applies defaults and builds a Client whose metrics are
// registered on reg (nil: not registered).
func New(cfg Config, reg prometheus.Registerer) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	m, err := NewMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("cloudapi: metrics: %w", err)
	}
	c := &Client{
		cfg:  cfg,
		root: cfg.BaseURL + "/" + cfg.Version + "/",
		http: cfg.HTTPClient,
		log:  cfg.Logger,
		m:    m,
	}
	if c.http == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 32
		c.http = &http.Client{Transport: tr}
		c.ownsHTTP = true
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.log = c.log.With("component", "cloudapi", "phone_number_id", cfg.PhoneNumberID)
	return c, nil
}

// PhoneNumberID is the business number's Graph id this Client speaks for.
func (c *Client) PhoneNumberID() string { return c.cfg.PhoneNumberID }

// Close releases the idle connections of the transport the Client built. It
// does nothing to a caller-supplied HTTPClient. Idempotent.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		if c.ownsHTTP {
			c.http.CloseIdleConnections()
		}
	})
	return nil
}

// request describes one Graph call.
type request struct {
	action string // metric label and log name
	method string
	node   string // Graph node (PhoneNumberID when empty, a WABA id...)
	path   string // edge under node ("calls"), "" for the node itself
	query  url.Values
	body   any
	// safe: repeating it cannot do harm (Meta treats a repeat as a no-op or
	// an error), so it is retried on network errors, 429 and 5xx.
	safe bool
	// subject is a masked phone number for logs, or "".
	subject string
	// once: one HTTP attempt, never retried (the caller spends a shared
	// budget per attempt and applies its own backoff).
	once bool
	// alreadyDone recognises the answer Meta gives to a repeat of a request
	// that was already applied. It is consulted only for an attempt that
	// follows one which may have reached Meta; a match is success.
	alreadyDone func(*Error) bool
}

// attemptResult is the outcome of one HTTP attempt.
type attemptResult struct {
	err        error
	retryable  bool
	maybeSent  bool          // the request may have reached Meta
	retryAfter time.Duration // from a Retry-After header
}

// do runs req with retries, decoding a 2xx body into out.
func (c *Client) do(ctx context.Context, req request, out any) error {
	var payload []byte
	if req.body != nil {
		var err error
		if payload, err = json.Marshal(req.body); err != nil {
			return fmt.Errorf("cloudapi: %s: encode: %w", req.action, err)
		}
	}
	node := req.node
	if node == "" {
		node = c.cfg.PhoneNumberID
	}
	u := c.root + node
	if req.path != "" {
		u += "/" + req.path
	}
	if len(req.query) > 0 {
		u += "?" + req.query.Encode()
	}
	mayHaveApplied := false
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("cloudapi: %s: %w", req.action, err)
		}
		res := c.attempt(ctx, req, u, payload, out)
		if res.err == nil {
			return nil
		}
		var ge *Error
		if mayHaveApplied && req.alreadyDone != nil && errors.As(res.err, &ge) && req.alreadyDone(ge) {
			c.log.InfoContext(ctx, "graph request was applied by an earlier attempt: treated as success",
				"action", req.action, "subject", req.subject, "attempt", attempt+1, "meta_code", ge.Code)
			return nil
		}
		mayHaveApplied = mayHaveApplied || res.maybeSent
		if ctx.Err() != nil {
			if !req.safe && res.maybeSent {
				return fmt.Errorf("cloudapi: %s: %w: %w", req.action, ErrOutcomeUnknown, errors.Join(ctx.Err(), res.err))
			}
			return fmt.Errorf("cloudapi: %s: %w", req.action, errors.Join(ctx.Err(), res.err))
		}
		if !res.retryable || attempt >= c.cfg.MaxRetries || req.once {
			if !req.safe && res.maybeSent {
				return fmt.Errorf("cloudapi: %s: %w: %w", req.action, ErrOutcomeUnknown, res.err)
			}
			return fmt.Errorf("cloudapi: %s: %w", req.action, res.err)
		}
		delay := c.backoff(attempt, res.retryAfter)
		c.m.retries.WithLabelValues(req.action).Inc()
		c.log.WarnContext(ctx, "graph request failed, retrying", "action", req.action, "subject", req.subject,
			"attempt", attempt+1, "retry_in", delay, "err", res.err)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("cloudapi: %s: %w", req.action, errors.Join(ctx.Err(), res.err))
		case <-t.C:
		}
	}
}

// backoff is RetryBaseDelay*2^attempt capped at RetryMaxDelay, jittered
// uniformly into [d/2, d]; a longer Retry-After (capped too) wins.
func (c *Client) backoff(attempt int, retryAfter time.Duration) time.Duration {
	d := c.cfg.RetryBaseDelay << min(attempt, 30)
	if d <= 0 || d > c.cfg.RetryMaxDelay {
		d = c.cfg.RetryMaxDelay
	}
	if half := int64(d / 2); half > 0 {
		d = time.Duration(half + rand.Int64N(half+1))
	}
	if retryAfter > d {
		d = min(retryAfter, c.cfg.RetryMaxDelay)
	}
	return d
}

func (c *Client) attempt(ctx context.Context, req request, u string, payload []byte, out any) attemptResult {
	actx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	var gotConn atomic.Bool
	actx = httptrace.WithClientTrace(actx, &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) { gotConn.Store(true) },
	})
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	hreq, err := http.NewRequestWithContext(actx, req.method, u, body)
	if err != nil {
		return attemptResult{err: fmt.Errorf("build request: %w", err)}
	}
	hreq.Header.Set("Authorization", "Bearer "+c.cfg.AccessToken)
	hreq.Header.Set("Accept", "application/json")
	if payload != nil {
		hreq.Header.Set("Content-Type", "application/json")
	}

	start := time.Now()
	resp, err := c.http.Do(hreq)
	if err != nil {
		result := failedResult(ctx, actx)
		if result == ResultTimeout {
			err = fmt.Errorf("attempt timed out after %v: %w", c.cfg.Timeout, err)
		}
		c.observe(req, start, result, 0)
		sent := gotConn.Load()
		return attemptResult{err: err, maybeSent: sent, retryable: req.safe || !sent}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		result := failedResult(ctx, actx)
		c.observe(req, start, result, resp.StatusCode)
		return attemptResult{err: fmt.Errorf("read answer: %w", err), maybeSent: true, retryable: req.safe}
	}
	if len(raw) > maxResponseBytes {
		c.observe(req, start, ResultBadResponse, resp.StatusCode)
		return attemptResult{err: fmt.Errorf("%w: answer over %d bytes", ErrUnexpectedResponse, maxResponseBytes), maybeSent: true}
	}
	if resp.StatusCode/100 == 2 {
		if err := decodeOK(raw, out); err != nil {
			c.observe(req, start, ResultBadResponse, resp.StatusCode)
			return attemptResult{err: err, maybeSent: true}
		}
		c.observe(req, start, ResultOK, resp.StatusCode)
		return attemptResult{}
	}
	gerr := parseGraphError(resp.StatusCode, raw)
	gerr.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"))
	// A 4xx is Meta refusing the request: a definite answer. A 5xx may come
	// from a proxy after Meta acted on it, unless it carries a calling code
	// the reference lists as a refusal (138007 connect timeout is a 500 and
	// must never be repeated: a new call attempt is needed).
	code := Code(gerr.Code)
	definite := code.Known() && code.Retry() != RetryBackoff
	res := attemptResult{err: gerr, maybeSent: resp.StatusCode >= 500 && !definite}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		c.observe(req, start, ResultRateLimited, resp.StatusCode)
		res.retryable = req.safe && !definite
		res.retryAfter = gerr.RetryAfter
	case resp.StatusCode >= 500:
		c.observe(req, start, ResultServerError, resp.StatusCode)
		res.retryable = req.safe && !definite
	default:
		c.observe(req, start, ResultMetaError, resp.StatusCode)
	}
	return res
}

func (c *Client) observe(req request, start time.Time, result string, status int) {
	d := time.Since(start)
	c.m.requests.WithLabelValues(req.action, result).Inc()
	c.m.duration.WithLabelValues(req.action).Observe(d.Seconds())
	c.log.Debug("graph request", "action", req.action, "subject", req.subject, "result", result,
		"http_status", status, "duration", d)
}

// decodeOK decodes a 2xx body into out; out validates itself.
func decodeOK(raw []byte, out any) error {
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%w: %w", ErrUnexpectedResponse, err)
	}
	if v, ok := out.(interface{ check() error }); ok {
		if err := v.check(); err != nil {
			return fmt.Errorf("%w: %w", ErrUnexpectedResponse, err)
		}
	}
	return nil
}

// checkNode validates a Graph node id (WABA id...): digits.
func checkNode(what, id string) error {
	if !digitsRE.MatchString(id) {
		return fmt.Errorf("%w: %s %q must be a Graph id (digits)", ErrBadInput, what, id)
	}
	return nil
}

type wireGraphError struct {
	Error *struct {
		Message   string `json:"message"`
		Type      string `json:"type"`
		Code      int    `json:"code"`
		Subcode   int    `json:"error_subcode"`
		FBTraceID string `json:"fbtrace_id"`
		ErrorData struct {
			Details string `json:"details"`
		} `json:"error_data"`
	} `json:"error"`
}

func parseGraphError(status int, raw []byte) *Error {
	e := &Error{HTTPStatus: status}
	var w wireGraphError
	if json.Unmarshal(raw, &w) == nil && w.Error != nil {
		e.Code, e.Subcode = w.Error.Code, w.Error.Subcode
		e.Type, e.Message, e.FBTraceID = w.Error.Type, w.Error.Message, w.Error.FBTraceID
		e.Details = w.Error.ErrorData.Details
		return e
	}
	e.Message = http.StatusText(status)
	return e
}

func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

// maskPhone keeps the last four digits: "+447700900123" -> "********0123".
func maskPhone(n string) string {
	if len(n) <= 4 {
		return "****"
	}
	return "********" + n[len(n)-4:]
}

// failedResult names a failed attempt: the caller gave up (ctx), the
// attempt's own timeout fired (actx), or the network failed.
func failedResult(ctx, actx context.Context) string {
	switch {
	case ctx.Err() != nil:
		return ResultCanceled
	case actx.Err() != nil:
		return ResultTimeout
	}
	return ResultNetworkError
}
