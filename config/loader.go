package config

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Loader holds the current configuration of a file and replaces it on
// Reload. A file that fails validation on reload changes nothing: the
// previous configuration stays, the error is logged, counted and returned.
type Loader struct {
	path     string
	log      *slog.Logger
	onChange func(*Config)
	cur      atomic.Pointer[Config]
	mu       sync.Mutex // serialises Reload
	reloads  *prometheus.CounterVec
}

// LoaderOptions are a Loader's optional parts.
type LoaderOptions struct {
	// OnChange is called after each successful Reload with the new
	// configuration (not for the first load), from the reloading goroutine.
	OnChange func(*Config)
	Logger   *slog.Logger          // default slog.Default()
	Registry prometheus.Registerer // callgw_config_reloads_total; nil = not registered
}

// NewLoader loads path once; a bad file is an error (the process should
// not start on it).
func NewLoader(path string, o LoaderOptions) (*Loader, error) {
	c, err := Load(path)
	if err != nil {
		return nil, err
	}
	l := &Loader{path: path, log: o.Logger, onChange: o.OnChange}
	if l.log == nil {
		l.log = slog.Default()
	}
	l.log = l.log.With("component", "config")
	l.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "callgw", Name: "config_reloads_total",
		Help: "Reloads of the numbers-and-teams file by result (ok, error: the previous configuration stays)."}, []string{"result"})
	l.reloads.WithLabelValues("ok")
	l.reloads.WithLabelValues("error")
	if o.Registry != nil {
		if err := o.Registry.Register(l.reloads); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, err
			}
			l.reloads = are.ExistingCollector.(*prometheus.CounterVec)
		}
	}
	l.cur.Store(c)
	l.log.Info("configuration loaded", "path", path, "numbers", len(c.Numbers), "teams", len(c.Teams))
	return l, nil
}

// Current returns the configuration in force; never nil.
func (l *Loader) Current() *Config { return l.cur.Load() }

// Path is the file the Loader reads.
func (l *Loader) Path() string { return l.path }

// Reload reads the file again. On success the new configuration replaces
// the old one and OnChange runs; on error nothing changes.
func (l *Loader) Reload() (*Config, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c, err := Load(l.path)
	if err != nil {
		l.reloads.WithLabelValues("error").Inc()
		l.log.Error("configuration reload refused; keeping the previous one", "path", l.path, "err", err)
		return l.cur.Load(), err
	}
	l.cur.Store(c)
	l.reloads.WithLabelValues("ok").Inc()
	l.log.Info("configuration reloaded", "path", l.path, "numbers", len(c.Numbers), "teams", len(c.Teams))
	if l.onChange != nil {
		l.onChange(c)
	}
	return c, nil
}

// Watch reloads on every value received from signals (the caller wires
// SIGHUP: signal.Notify(ch, syscall.SIGHUP)) until ctx ends. Reload errors
// are logged and counted, never fatal. It returns ctx's error.
func (l *Loader) Watch(ctx context.Context, signals <-chan os.Signal) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case _, ok := <-signals:
			if !ok {
				return nil
			}
			_, _ = l.Reload()
		}
	}
}
