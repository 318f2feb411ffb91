package storage

import "errors"

var (
	// ErrBadKey is returned for a key that is empty, too long, absolute, has
	// empty, "." or ".." segments, a segment starting with a dot, or
	// characters outside [A-Za-z0-9._=+-/].
	ErrBadKey = errors.New("storage: bad key")
	// ErrNotFound is returned by Get for a key that holds no object.
	ErrNotFound = errors.New("storage: object not found")
	// ErrSizeMismatch is returned by Put when the reader yields a different
	// number of bytes than the size announced; nothing is stored.
	ErrSizeMismatch = errors.New("storage: size mismatch")
	// ErrBadConfig is returned by constructors for an invalid configuration.
	ErrBadConfig = errors.New("storage: bad configuration")
	// ErrBadSignature is returned by LinkSigner.Verify for a link whose
	// signature does not match or that has expired.
	ErrBadSignature = errors.New("storage: bad or expired link signature")
)
