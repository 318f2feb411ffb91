package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Local keeps objects as files under a root directory: the object for key
// "a/b/c.ogg" is root/a/b/c.ogg, its metadata root/.meta/a/b/c.ogg.json.
// Writes go to root/.tmp and are renamed into place after fsync, so a reader
// sees the old object or the whole new one. Keys are checked by ValidKey, so
// no key can name a path outside root.
type Local struct {
	root  string
	links *LinkSigner
}

// LocalConfig configures a Local store.
type LocalConfig struct {
	// Dir is the root directory, created (0o750) if missing. Required.
	Dir string
	// Links, if set, lets SignedURL hand out links served by LinkHandler.
	Links *LinkSigner
}

// NewLocal opens (creating if needed) a local directory store.
func NewLocal(cfg LocalConfig) (*Local, error) {
	if cfg.Dir == "" {
		return nil, fmt.Errorf("%w: local store needs a directory", ErrBadConfig)
	}
	root, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("storage: local dir: %w", err)
	}
	for _, d := range []string{root, filepath.Join(root, ".tmp"), filepath.Join(root, ".meta")} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, fmt.Errorf("storage: local dir: %w", err)
		}
	}
	return &Local{root: root, links: cfg.Links}, nil
}

func (l *Local) path(key string) string { return filepath.Join(l.root, filepath.FromSlash(key)) }
func (l *Local) metaPath(key string) string {
	return filepath.Join(l.root, ".meta", filepath.FromSlash(key)+".json")
}

type localMeta struct {
	ContentType string            `json:"content_type,omitempty"`
	User        map[string]string `json:"user,omitempty"`
}

// Put implements Store.
func (l *Local) Put(ctx context.Context, key string, r io.Reader, size int64, meta Meta) error {
	if err := ValidKey(key); err != nil {
		return err
	}
	if size < -1 {
		return fmt.Errorf("%w: negative size %d", ErrSizeMismatch, size)
	}
	mb, err := json.Marshal(localMeta{ContentType: meta.ContentType, User: meta.User})
	if err != nil {
		return fmt.Errorf("storage: meta: %w", err)
	}
	tmp, err := l.writeTemp(ctx, &exactReader{r: r, want: size})
	if err != nil {
		return err
	}
	defer os.Remove(tmp) // no-op after a successful rename
	mtmp, err := l.writeTemp(ctx, strings.NewReader(string(mb)))
	if err != nil {
		return err
	}
	defer os.Remove(mtmp)
	if err := l.renameInto(mtmp, l.metaPath(key)); err != nil {
		return err
	}
	return l.renameInto(tmp, l.path(key))
}

func (l *Local) writeTemp(ctx context.Context, r io.Reader) (string, error) {
	f, err := os.CreateTemp(filepath.Join(l.root, ".tmp"), "put-*")
	if err != nil {
		return "", fmt.Errorf("storage: temp file: %w", err)
	}
	name := f.Name()
	_, err = io.Copy(f, ctxReader{ctx: ctx, r: r})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		return "", fmt.Errorf("storage: write: %w", err)
	}
	return name, nil
}

func (l *Local) renameInto(tmp, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
		return fmt.Errorf("storage: mkdir: %w", err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("storage: rename: %w", err)
	}
	return nil
}

// Get implements Store.
func (l *Local) Get(ctx context.Context, key string) (io.ReadCloser, Object, error) {
	if err := ValidKey(key); err != nil {
		return nil, Object{}, err
	}
	f, err := os.Open(l.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, Object{}, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	if err != nil {
		return nil, Object{}, fmt.Errorf("storage: open: %w", err)
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil, Object{}, fmt.Errorf("%w: %s is not a file", ErrNotFound, key)
	}
	return f, l.object(key, st), nil
}

func (l *Local) object(key string, st fs.FileInfo) Object {
	o := Object{Key: key, Size: st.Size(), ModTime: st.ModTime()}
	if b, err := os.ReadFile(l.metaPath(key)); err == nil {
		var m localMeta
		if json.Unmarshal(b, &m) == nil {
			o.ContentType, o.User = m.ContentType, m.User
		}
	}
	return o
}

// Delete implements Store; empty parent directories are removed too.
func (l *Local) Delete(ctx context.Context, key string) error {
	if err := ValidKey(key); err != nil {
		return err
	}
	for _, p := range []string{l.path(key), l.metaPath(key)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("storage: delete: %w", err)
		}
	}
	l.pruneDirs(filepath.Dir(l.path(key)), l.root)
	l.pruneDirs(filepath.Dir(l.metaPath(key)), filepath.Join(l.root, ".meta"))
	return nil
}

func (l *Local) pruneDirs(dir, stop string) {
	for dir != stop && strings.HasPrefix(dir, stop+string(filepath.Separator)) {
		if os.Remove(dir) != nil { // not empty (or gone): stop climbing
			return
		}
		dir = filepath.Dir(dir)
	}
}

// List implements Store.
func (l *Local) List(ctx context.Context, prefix string) ([]Object, error) {
	if err := validPrefix(prefix); err != nil {
		return nil, err
	}
	// Walk from the deepest directory the prefix names.
	start := l.root
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		start = l.path(prefix[:i])
	}
	var out []Object
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if d.IsDir() {
			if p != l.root && strings.HasPrefix(d.Name(), ".") {
				return fs.SkipDir
			}
			return nil
		}
		rel, err := filepath.Rel(l.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) || ValidKey(key) != nil {
			return nil
		}
		st, err := d.Info()
		if err != nil {
			return nil // removed while walking
		}
		out = append(out, l.object(key, st))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: list: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// SignedURL implements URLSigner when the store was given a LinkSigner.
func (l *Local) SignedURL(ctx context.Context, key string, ttl time.Duration) (string, error) {
	if l.links == nil {
		return "", fmt.Errorf("%w: local store has no link signer", ErrBadConfig)
	}
	if err := ValidKey(key); err != nil {
		return "", err
	}
	return l.links.Sign(key, ttl), nil
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
