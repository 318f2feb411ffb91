package storage

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/encrypt"
)

// S3Config configures an S3-compatible store.
type S3Config struct {
	// Endpoint is host[:port] of the S3 API, without scheme. Required.
	Endpoint string
	// Bucket holds the objects. Required.
	Bucket string
	// Region of the bucket; empty lets the client discover it.
	Region string
	// AccessKey and SecretKey are static credentials. Required.
	AccessKey, SecretKey string
	// Insecure talks plain HTTP (test servers on loopback only).
	Insecure bool
	// SSE asks the store to encrypt every object at rest with its own keys
	// (SSE-S3: header x-amz-server-side-encryption: AES256). Default off,
	// because not every S3-compatible server implements it.
	SSE bool
	// CreateBucket makes the bucket when it does not exist.
	CreateBucket bool
}

// Validate reports a missing required field.
func (c S3Config) Validate() error {
	switch {
	case c.Endpoint == "" || strings.Contains(c.Endpoint, "://"):
		return fmt.Errorf("%w: s3 endpoint %q must be host[:port]", ErrBadConfig, c.Endpoint)
	case c.Bucket == "":
		return fmt.Errorf("%w: s3 bucket required", ErrBadConfig)
	case c.AccessKey == "" || c.SecretKey == "":
		return fmt.Errorf("%w: s3 credentials required", ErrBadConfig)
	}
	return nil
}

// S3 stores objects in one bucket of an S3-compatible service.
type S3 struct {
	c      *minio.Client
	bucket string
	sse    bool
}

// NewS3 connects to the service and checks (or creates) the bucket.
func NewS3(ctx context.Context, cfg S3Config) (*S3, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure: !cfg.Insecure,
		Region: cfg.Region,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: s3 client: %v", ErrBadConfig, err)
	}
	ok, err := c.BucketExists(ctx, cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("storage: s3 bucket %q: %w", cfg.Bucket, err)
	}
	if !ok {
		if !cfg.CreateBucket {
			return nil, fmt.Errorf("%w: s3 bucket %q does not exist", ErrBadConfig, cfg.Bucket)
		}
		if err := c.MakeBucket(ctx, cfg.Bucket, minio.MakeBucketOptions{Region: cfg.Region}); err != nil {
			return nil, fmt.Errorf("storage: s3 make bucket %q: %w", cfg.Bucket, err)
		}
	}
	return &S3{c: c, bucket: cfg.Bucket, sse: cfg.SSE}, nil
}

// Put implements Store.
func (s *S3) Put(ctx context.Context, key string, r io.Reader, size int64, meta Meta) error {
	if err := ValidKey(key); err != nil {
		return err
	}
	if size < -1 {
		return fmt.Errorf("%w: negative size %d", ErrSizeMismatch, size)
	}
	opts := minio.PutObjectOptions{ContentType: meta.ContentType, UserMetadata: meta.User}
	if s.sse {
		opts.ServerSideEncryption = encrypt.NewSSE()
	}
	if _, err := s.c.PutObject(ctx, s.bucket, key, &exactReader{r: r, want: size}, size, opts); err != nil {
		return fmt.Errorf("storage: s3 put %s: %w", key, err)
	}
	return nil
}

// Get implements Store.
func (s *S3) Get(ctx context.Context, key string) (io.ReadCloser, Object, error) {
	if err := ValidKey(key); err != nil {
		return nil, Object{}, err
	}
	o, err := s.c.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, Object{}, s.wrap("get", key, err)
	}
	st, err := o.Stat()
	if err != nil {
		o.Close()
		return nil, Object{}, s.wrap("get", key, err)
	}
	return o, s3Object(st), nil
}

func s3Object(st minio.ObjectInfo) Object {
	o := Object{Key: st.Key, Size: st.Size, ContentType: st.ContentType, ModTime: st.LastModified}
	if len(st.UserMetadata) > 0 {
		o.User = make(map[string]string, len(st.UserMetadata))
		for k, v := range st.UserMetadata {
			o.User[strings.ToLower(strings.TrimPrefix(strings.TrimPrefix(k, "X-Amz-Meta-"), "x-amz-meta-"))] = v
		}
	}
	return o
}

func (s *S3) wrap(op, key string, err error) error {
	if resp := minio.ToErrorResponse(err); resp.Code == "NoSuchKey" || resp.StatusCode == 404 {
		return fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	return fmt.Errorf("storage: s3 %s %s: %w", op, key, err)
}

// Delete implements Store.
func (s *S3) Delete(ctx context.Context, key string) error {
	if err := ValidKey(key); err != nil {
		return err
	}
	if err := s.c.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{}); err != nil {
		if minio.ToErrorResponse(err).Code == "NoSuchKey" {
			return nil
		}
		return fmt.Errorf("storage: s3 delete %s: %w", key, err)
	}
	return nil
}

// List implements Store.
func (s *S3) List(ctx context.Context, prefix string) ([]Object, error) {
	if err := validPrefix(prefix); err != nil {
		return nil, err
	}
	var out []Object
	for o := range s.c.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			return nil, fmt.Errorf("storage: s3 list %q: %w", prefix, o.Err)
		}
		out = append(out, s3Object(o))
	}
	return out, nil
}

// SignedURL implements URLSigner with an S3 presigned GET.
func (s *S3) SignedURL(ctx context.Context, key string, ttl time.Duration) (string, error) {
	if err := ValidKey(key); err != nil {
		return "", err
	}
	u, err := s.c.PresignedGetObject(ctx, s.bucket, key, ttl, url.Values{})
	if err != nil {
		return "", fmt.Errorf("storage: s3 presign %s: %w", key, err)
	}
	return u.String(), nil
}
