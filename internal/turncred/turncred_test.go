package turncred

import (
	"errors"
	"testing"
	"time"
)

func TestSignKnownVector(t *testing.T) {
	// echo -n "1700000000:alice" | openssl dgst -sha1 -hmac "0123456789abcdef-secret" -binary | base64
	if got, want := Sign("0123456789abcdef-secret", "1700000000:alice"), "/F42eaImLNE8Ndqtu0Eo/wcd44I="; got != want {
		t.Fatalf("Sign = %q, want %q", got, want)
	}
}

func TestIssue(t *testing.T) {
	now := time.Unix(1_700_000_000, 500_000_000)
	iss, err := New(Config{Secret: "0123456789abcdef-secret", URLs: []string{"turn:turn.example.com:3478?transport=udp"},
		TTL: time.Hour, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	c := iss.Issue("alice")
	if c.Username != "1700003600:alice" {
		t.Fatalf("username %q", c.Username)
	}
	if c.Credential != Sign("0123456789abcdef-secret", c.Username) {
		t.Fatal("credential is not the signature of the username")
	}
	if !c.Expires.Equal(time.Unix(1_700_003_600, 0)) {
		t.Fatalf("expires %v", c.Expires)
	}
	exp, err := Expiry(c.Username)
	if err != nil || !exp.Equal(c.Expires) {
		t.Fatalf("Expiry = %v, %v", exp, err)
	}
	if iss.RenewEvery() != 30*time.Minute {
		t.Fatalf("renew every %v", iss.RenewEvery())
	}
	c.URLs[0] = "changed"
	if iss.URLs()[0] == "changed" {
		t.Fatal("Issue shares the URL slice")
	}
}

func TestConfigValidate(t *testing.T) {
	good := Config{Secret: "0123456789abcdef", URLs: []string{"turn:h:3478"}}
	tests := []struct {
		name string
		mod  func(*Config)
		ok   bool
	}{
		{"good", func(*Config) {}, true},
		{"turns and stun", func(c *Config) { c.URLs = []string{"stun:h", "turns:h:443?transport=tcp"} }, true},
		{"short secret", func(c *Config) { c.Secret = "short" }, false},
		{"no turn url", func(c *Config) { c.URLs = []string{"stun:h:3478"} }, false},
		{"no urls", func(c *Config) { c.URLs = nil }, false},
		{"http url", func(c *Config) { c.URLs = []string{"http://h"} }, false},
		{"bad transport", func(c *Config) { c.URLs = []string{"turn:h?transport=sctp"} }, false},
		{"bad port", func(c *Config) { c.URLs = []string{"turn:h:99999"} }, false},
		{"ttl too short", func(c *Config) { c.TTL = time.Minute }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.mod(&c)
			err := c.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("error %v does not wrap ErrInvalidConfig", err)
			}
		})
	}
}

func TestParseURL(t *testing.T) {
	tests := []struct {
		in   string
		want URL
		ok   bool
	}{
		{"stun:stun.example.com", URL{"stun", "stun.example.com", 3478, ""}, true},
		{"turn:198.51.100.7", URL{"turn", "198.51.100.7", 3478, "udp"}, true},
		{"turn:198.51.100.7:3479?transport=tcp", URL{"turn", "198.51.100.7", 3479, "tcp"}, true},
		{"turns:t.example.com", URL{"turns", "t.example.com", 5349, "tcp"}, true},
		{"turn:[2001:db8::1]:3478", URL{"turn", "2001:db8::1", 3478, "udp"}, true},
		{"stun:h?transport=udp", URL{}, false},
		{"turn:", URL{}, false},
		{"ftp:h", URL{}, false},
		{"h", URL{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseURL(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if tt.ok && got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"stun:h", "turn:h:1?transport=tcp", "turns:[::1]:5349", "turn::"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseURL(s)
		if err == nil && (u.Host == "" || u.Port <= 0 || u.Port > 65535) {
			t.Fatalf("%q parsed to %+v", s, u)
		}
	})
}
