// Package storage keeps blobs (call recordings, transcripts) behind a small
// interface with two implementations: a local directory (the default; atomic
// writes, path-traversal-safe keys) and an S3-compatible bucket (minio-go,
// optional SSE-S3). It knows nothing about calls; package recording names the
// objects.
package storage

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"
)

// MaxKeyLen is the longest key accepted (S3's limit).
const MaxKeyLen = 1024

// Meta describes an object beside its bytes.
type Meta struct {
	// ContentType is the MIME type, e.g. "audio/ogg; codecs=opus".
	ContentType string
	// User holds small extra attributes (keys lower-case [a-z0-9-]), kept as
	// S3 user metadata or in the local store's sidecar.
	User map[string]string
}

// Object is what a store knows of one stored blob.
type Object struct {
	Key         string
	Size        int64
	ContentType string
	ModTime     time.Time
	User        map[string]string
}

// Store is a flat namespace of immutable blobs addressed by slash-separated keys.
type Store interface {
	// Put stores r's bytes under key, replacing any object there. size is the
	// exact length, or -1 when unknown; a reader that yields another length
	// fails with ErrSizeMismatch and stores nothing. Readers of the key never
	// see a partial object.
	Put(ctx context.Context, key string, r io.Reader, size int64, meta Meta) error
	// Get opens the object; the caller closes the reader. ErrNotFound when absent.
	Get(ctx context.Context, key string) (io.ReadCloser, Object, error)
	// Delete removes the object; deleting an absent key is not an error.
	Delete(ctx context.Context, key string) error
	// List returns the objects whose keys start with prefix, in key order.
	List(ctx context.Context, prefix string) ([]Object, error)
}

// URLSigner is implemented by stores that can hand out time-limited links to
// an object (S3 presigned URLs; the local store with a LinkSigner).
type URLSigner interface {
	SignedURL(ctx context.Context, key string, ttl time.Duration) (string, error)
}

// ValidKey reports whether key is acceptable to every store: 1..MaxKeyLen
// bytes of [A-Za-z0-9._=+-] segments separated by single slashes, no segment
// empty or starting with a dot (so no "." or ".." and no hidden files).
func ValidKey(key string) error {
	if key == "" || len(key) > MaxKeyLen {
		return fmt.Errorf("%w: length %d", ErrBadKey, len(key))
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg[0] == '.' {
			return fmt.Errorf("%w: segment %q in %q", ErrBadKey, seg, key)
		}
		for i := 0; i < len(seg); i++ {
			if !keyByte(seg[i]) {
				return fmt.Errorf("%w: byte %q in %q", ErrBadKey, seg[i], key)
			}
		}
	}
	return nil
}

// validPrefix accepts "" or a prefix that is a valid key, optionally ending in "/".
func validPrefix(p string) error {
	if p == "" {
		return nil
	}
	return ValidKey(strings.TrimSuffix(p, "/"))
}

func keyByte(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	case c == '.', c == '_', c == '-', c == '=', c == '+':
		return true
	}
	return false
}

// exactReader yields exactly want bytes of r (want -1: any number). It fails
// with ErrSizeMismatch on an early EOF, and in the Read that completes want
// bytes if r has more, so a consumer that stops at want bytes still sees the
// error before it commits.
type exactReader struct {
	r    io.Reader
	n    int64
	want int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.want >= 0 {
		if left := e.want - e.n; int64(len(p)) > left {
			p = p[:left]
		}
		if len(p) == 0 {
			return 0, e.probe()
		}
	}
	n, err := e.r.Read(p)
	e.n += int64(n)
	if e.want < 0 {
		return n, err
	}
	if err == io.EOF && e.n < e.want {
		return n, fmt.Errorf("%w: read %d bytes, announced %d", ErrSizeMismatch, e.n, e.want)
	}
	if e.n == e.want {
		if perr := e.probe(); perr != io.EOF {
			return n, perr
		}
		return n, io.EOF
	}
	return n, err
}

func (e *exactReader) probe() error {
	var one [1]byte
	for {
		n, err := e.r.Read(one[:])
		if n > 0 {
			return fmt.Errorf("%w: more than %d bytes", ErrSizeMismatch, e.want)
		}
		if err == io.EOF {
			return io.EOF
		}
		if err != nil {
			return err
		}
	}
}
