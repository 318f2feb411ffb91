package app

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/callgw/callgw/config"
	"github.com/callgw/callgw/media"
	"github.com/callgw/callgw/signaling/routing"
)

// The numbers-and-teams configuration (CALLGW_CONFIG, or the legacy
// variables: one number, one team of every agent) and the routing decisions
// made over it (signaling/routing), re-read on SIGHUP.

// loadRouting reads the configuration: the file (kept by a Loader that
// SIGHUP reloads) or, without one, the legacy single number.
func (a *App) loadRouting() (*config.Config, error) {
	if a.Cfg.ConfigFile != "" {
		l, err := config.NewLoader(a.Cfg.ConfigFile, config.LoaderOptions{Logger: a.Log, Registry: a.Registry,
			OnChange: func(c *config.Config) { a.configChanged(c) }})
		if err != nil {
			return nil, fmt.Errorf("CALLGW_CONFIG: %w", err)
		}
		a.ConfigLoader = l
		a.reloadHold(l.Current())
		return l.Current(), nil
	}
	c, err := config.FromEnv(func(k string) string {
		switch k {
		case config.EnvPhoneNumberID:
			return a.Cfg.PhoneNumberID
		case config.EnvWABAID:
			return a.Cfg.WABAID
		case config.EnvPermissionTemplate:
			return a.Cfg.PermissionTemplate
		}
		return os.Getenv(k)
	}, DemoPhoneNumberID)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// newRouter builds the routing decisions over the shared Redis.
func (a *App) newRouter(c *config.Config) error {
	r, err := routing.New(a.Redis, routing.Options{Config: c, Instance: a.Cfg.InstanceID,
		Logger: a.Log.With("component", "routing"), Registry: a.Registry})
	if err != nil {
		return fmt.Errorf("routing: %w", err)
	}
	a.Router = r
	return nil
}

// configChanged applies a reloaded configuration: teams and strategies at
// once; numbers added are served with their own clients (numbers.go),
// numbers removed take no new call.
func (a *App) configChanged(c *config.Config) {
	if a.Router != nil {
		a.Router.SetConfig(c)
	}
	a.reloadNumbers(c)
	a.reloadHold(c)
}

// configWatcher listens to SIGHUP from now on and returns the loop that
// reloads the file on each until ctx ends.
func (a *App) configWatcher(ctx context.Context) func() error {
	if a.ConfigLoader == nil {
		return func() error { return nil }
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGHUP)
	return func() error {
		defer signal.Stop(sig)
		_ = a.ConfigLoader.Watch(ctx, sig)
		return nil
	}
}

// ReloadConfig re-reads the file now (as SIGHUP does); with a bad file the
// previous configuration stays and the error is returned.
func (a *App) ReloadConfig() error {
	if a.ConfigLoader == nil {
		return fmt.Errorf("no CALLGW_CONFIG file to reload")
	}
	_, err := a.ConfigLoader.Reload()
	return err
}

// reloadHold reloads the numbers' hold audio.
func (a *App) reloadHold(c *config.Config) {
	m := a.holdPrompts(c)
	a.holds.Store(&m)
}

// holdPrompts loads each number's hold_audio (media.LoadPromptFile; the
// built-in "hold" music when a number has none, or its file cannot be
// played) for signaling's Deps.HoldAudio.
func (a *App) holdPrompts(c *config.Config) map[string]*media.Prompt {
	out := map[string]*media.Prompt{}
	for _, n := range c.Numbers {
		if n.HoldAudio == "" {
			continue
		}
		path := n.HoldAudio
		if !filepath.IsAbs(path) && c.Source != "" {
			path = filepath.Join(filepath.Dir(c.Source), path)
		}
		p, err := media.LoadPromptFile(path)
		if err != nil {
			a.Log.Error("hold audio cannot be played: the built-in hold music is used", "number", n.PhoneNumberID, "err", err)
			continue
		}
		out[n.PhoneNumberID] = p
	}
	return out
}

// holdAudio is what a waiting caller of a number hears (nil: built-in).
func (a *App) holdAudio(pnid string) *media.Prompt {
	if m := a.holds.Load(); m != nil {
		return (*m)[pnid]
	}
	return nil
}
