package cloudapi

import (
	"errors"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	good := Config{AccessToken: "tok", PhoneNumberID: "106540352242922"}
	mod := func(f func(*Config)) Config { c := good; f(&c); return c }
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"defaults", good, true},
		{"explicit", mod(func(c *Config) {
			c.BaseURL, c.Version, c.Timeout, c.MaxRetries = "http://127.0.0.1:8080/graph/", "v24.0", time.Second, -1
		}), true},
		{"no token", mod(func(c *Config) { c.AccessToken = "" }), false},
		{"token with newline", mod(func(c *Config) { c.AccessToken = "tok\nX-Evil: 1" }), false},
		{"no phone number id", mod(func(c *Config) { c.PhoneNumberID = "" }), false},
		{"phone number not digits", mod(func(c *Config) { c.PhoneNumberID = "+15551441906" }), false},
		{"bad version", mod(func(c *Config) { c.Version = "23.0" }), false},
		{"ftp base", mod(func(c *Config) { c.BaseURL = "ftp://graph.facebook.com" }), false},
		{"relative base", mod(func(c *Config) { c.BaseURL = "graph.facebook.com" }), false},
		{"base with query", mod(func(c *Config) { c.BaseURL = "https://graph.facebook.com?x=1" }), false},
		{"negative timeout", mod(func(c *Config) { c.Timeout = -time.Second }), false},
		{"too many retries", mod(func(c *Config) { c.MaxRetries = 11 }), false},
		{"base above max delay", mod(func(c *Config) { c.RetryBaseDelay, c.RetryMaxDelay = time.Second, time.Millisecond }), false},
		{"negative delay", mod(func(c *Config) { c.RetryBaseDelay = -1 }), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if (err == nil) != tc.ok {
				t.Fatalf("Validate = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrBadConfig) {
				t.Errorf("err %v is not ErrBadConfig", err)
			}
			c, nerr := New(tc.cfg, nil)
			if (nerr == nil) != tc.ok {
				t.Fatalf("New = %v, want ok=%v", nerr, tc.ok)
			}
			if c != nil {
				c.Close()
				c.Close() // idempotent
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	c, err := New(Config{AccessToken: "tok", PhoneNumberID: "1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.root != "https://graph.facebook.com/v23.0/" || c.cfg.Timeout != 5*time.Second || c.cfg.MaxRetries != 3 {
		t.Errorf("defaults: root %q timeout %v retries %d", c.root, c.cfg.Timeout, c.cfg.MaxRetries)
	}
}

func TestParseISODuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"PT24H", 24 * time.Hour, true},
		{"P7D", 7 * 24 * time.Hour, true},
		{"P1W", 7 * 24 * time.Hour, true},
		{"P1DT12H", 36 * time.Hour, true},
		{"PT30M", 30 * time.Minute, true},
		{"PT45S", 45 * time.Second, true},
		{"P1M", 0, false},
		{"P1Y", 0, false},
		{"PT", 0, false},
		{"P", 0, false},
		{"24H", 0, false},
		{"PTT1H", 0, false},
		{"PT1", 0, false},
		{"PT9999999H", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseISODuration(tc.in)
			if (err == nil) != tc.ok || got != tc.want {
				t.Errorf("got %v, %v; want %v, ok=%v", got, err, tc.want, tc.ok)
			}
		})
	}
}

func TestMaskPhone(t *testing.T) {
	tests := []struct{ in, want string }{
		{"447700900123", "********0123"}, {"+447700900123", "********0123"}, {"12", "****"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			if got := maskPhone(tc.in); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
