package cloudapi

import (
	"context"
	"errors"
	"net/http"
	"net/url"
)

// PhoneNumberInfo is the business number as Graph describes it.
type PhoneNumberInfo struct {
	ID                 string `json:"id"`
	DisplayPhoneNumber string `json:"display_phone_number"`
	VerifiedName       string `json:"verified_name"`
	QualityRating      string `json:"quality_rating"` // GREEN, YELLOW, RED, UNKNOWN… (kept as sent)
}

func (p *PhoneNumberInfo) check() error {
	if p.ID == "" && p.DisplayPhoneNumber == "" {
		return errors.New("no id or display_phone_number")
	}
	return nil
}

// GetPhoneNumber reads GET /<PHONE_NUMBER_ID>?fields=display_phone_number,verified_name,quality_rating:
// a cheap check that the token and the number id work (doctor command).
// Retried when safe.
func (c *Client) GetPhoneNumber(ctx context.Context) (*PhoneNumberInfo, error) {
	var p PhoneNumberInfo
	if err := c.do(ctx, request{action: ActionGetPhoneNumber, method: http.MethodGet, safe: true,
		query: url.Values{"fields": {"display_phone_number,verified_name,quality_rating"}}}, &p); err != nil {
		return nil, err
	}
	return &p, nil
}
