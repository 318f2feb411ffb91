package signaling

import (
	"errors"
	"io"
	"net/http"

	"github.com/callgw/callgw/signaling/webhook"
)

// WebhookHandler serves GET and POST /webhooks/whatsapp: the subscription
// check, then signed deliveries. It answers 200 once every event of the
// delivery is durably recorded (or safely ignored), 401 for a missing or bad
// signature, 413 over 3 MB, 400 for a body that is not a webhook at all (not
// JSON, not a WhatsApp envelope; a bad item inside is skipped and the rest
// applied), and 503 when state could
// not be recorded, so that Meta retries; duplicates are acknowledged.
func (c *Controller) WebhookHandler() http.Handler {
	secret := []byte(c.cfg.AppSecret)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet:
			ch, err := webhook.VerifyChallenge(r.URL.Query(), c.cfg.VerifyToken)
			if err != nil {
				http.Error(w, "verification failed", http.StatusForbidden)
				return
			}
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, ch)
			return
		case http.MethodPost:
		default:
			w.Header().Set("Allow", "GET, POST")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		received := c.now()
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, webhook.MaxBodyBytes))
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				c.m.webhooks.WithLabelValues("delivery", "too_large").Inc()
				http.Error(w, "body over 3 MB", http.StatusRequestEntityTooLarge)
				return
			}
			http.Error(w, "cannot read body", http.StatusBadRequest)
			return
		}
		if err := webhook.Verify(secret, body, r.Header.Get("X-Hub-Signature-256")); err != nil {
			c.m.webhooks.WithLabelValues("delivery", "bad_signature").Inc()
			c.log.Warn("webhook signature rejected", "err", err, "remote", r.RemoteAddr)
			http.Error(w, "invalid signature", http.StatusUnauthorized)
			return
		}
		batch, err := webhook.Parse(body)
		if err != nil {
			c.m.webhooks.WithLabelValues("delivery", "malformed").Inc()
			http.Error(w, "malformed webhook: "+err.Error(), http.StatusBadRequest)
			return
		}
		for _, sk := range batch.Skipped {
			// One bad item never sinks the batch: it is logged, counted and
			// skipped; the rest applies and Meta gets 200.
			c.m.webhooks.WithLabelValues("item", "malformed").Inc()
			c.log.Warn("webhook item skipped", "where", sk.Where, "field", sk.Field, "reason", sk.Reason)
		}
		retry := false
		for _, ev := range batch.Events {
			if err := c.HandleEvent(r.Context(), ev, received); err != nil {
				if IsRetryable(err) {
					c.log.Warn("webhook event not recorded: asking Meta to retry", "err", err)
					retry = true
				} else if errors.Is(err, ErrBadEvent) {
					c.log.Warn("webhook event ignored", "err", err)
				}
			}
		}
		if retry {
			http.Error(w, "temporarily unavailable", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
}
