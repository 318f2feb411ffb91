package app

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/callgw/callgw/config"
	"github.com/callgw/callgw/signaling"
	"github.com/callgw/callgw/signaling/cloudapi"
)

// The served numbers besides the main one (CALLGW_PHONE_NUMBER_ID): each
// has its own Graph client (its token_env's token) and its own live
// call_permissions reader (its own Meta rate budget, shared by every
// instance through Redis). Rebuilt on every configuration reload: a number
// added is served at once, a number removed takes no new call, while its
// client stays for the calls it still carries.

// numberClients are the per-number clients in force (immutable; replaced
// whole on reload).
type numberClients struct {
	graphs map[string]*cloudapi.Client
	lives  map[string]*cloudapi.PermissionsReader
	served []string // the numbers of the configuration, main one excluded
}

// buildNumbers makes the clients of c's numbers (main one excluded); the
// clients of numbers no longer configured are kept from prev (their live
// calls still hang up through them), but not served.
func (a *App) buildNumbers(c *config.Config, prev *numberClients) (*numberClients, error) {
	nc := &numberClients{graphs: map[string]*cloudapi.Client{}, lives: map[string]*cloudapi.PermissionsReader{}}
	for _, n := range c.Numbers {
		if n.PhoneNumberID == a.Cfg.PhoneNumberID {
			continue
		}
		gc, err := cloudapi.New(cloudapi.Config{BaseURL: a.graphBase, Version: a.Cfg.GraphVersion,
			AccessToken: tokenOf(n, a.Cfg.AccessToken), PhoneNumberID: n.PhoneNumberID,
			Logger: a.Log.With("component", "cloudapi", "phone_number_id", n.PhoneNumberID)}, nil)
		if err != nil {
			return nil, fmt.Errorf("graph client of number %s (CALLGW_CONFIG line %d): %w", n.PhoneNumberID, n.Line, err)
		}
		live, err := cloudapi.NewPermissionsReader(gc, cloudapi.ReaderConfig{Limiter: a.limiter, CacheTTL: a.Cfg.LiveCacheTTL,
			Logger: a.Log.With("component", "cloudapi", "phone_number_id", n.PhoneNumberID)}, a.Registry)
		if err != nil {
			return nil, fmt.Errorf("live permissions of number %s (CALLGW_CONFIG line %d): %w", n.PhoneNumberID, n.Line, err)
		}
		nc.graphs[n.PhoneNumberID], nc.lives[n.PhoneNumberID] = gc, live
		nc.served = append(nc.served, n.PhoneNumberID)
	}
	if prev != nil {
		for id, g := range prev.graphs {
			if _, ok := nc.graphs[id]; !ok {
				nc.graphs[id] = g // removed: kept for its live calls, not served
			}
		}
	}
	return nc, nil
}

// numberGraph is the Graph client of a served (or formerly served) number.
func (a *App) numberGraph(pnid string) *cloudapi.Client {
	if nc := a.numClients.Load(); nc != nil {
		return nc.graphs[pnid]
	}
	return nil
}

// numberDeps are signaling's per-number lookups over the clients in force.
func (a *App) numberDeps(d *signaling.Deps) {
	d.GraphFor = func(pnid string) signaling.Graph {
		if g := a.numberGraph(pnid); g != nil {
			return g
		}
		return nil
	}
	d.DialerFor = func(pnid string) signaling.Dialer {
		if g := a.numberGraph(pnid); g != nil {
			return g
		}
		return nil
	}
	d.SettingsFor = func(pnid string) signaling.SettingsClient {
		if pnid == a.Cfg.PhoneNumberID {
			return a.Graph
		}
		if g := a.numberGraph(pnid); g != nil {
			return g
		}
		return nil
	}
	d.LiveFor = func(pnid string) signaling.LivePermissions {
		if nc := a.numClients.Load(); nc != nil {
			if r := nc.lives[pnid]; r != nil {
				return r
			}
		}
		return nil
	}
}

// reloadNumbers rebuilds the per-number clients for a reloaded
// configuration and tells signaling which numbers it serves now; the
// calling settings (call hours) of numbers added are read from Meta.
func (a *App) reloadNumbers(c *config.Config) {
	prev := a.numClients.Load()
	nc, err := a.buildNumbers(c, prev)
	if err != nil {
		a.Log.Error("reloaded configuration: the numbers keep their previous clients", "err", err)
		return
	}
	a.numClients.Store(nc)
	if a.Ctrl == nil {
		return
	}
	a.Ctrl.SetNumbers(nc.served)
	for _, id := range nc.served {
		if prev != nil && slices.Contains(prev.served, id) {
			continue
		}
		a.Log.Info("number added by reload: served", "phone_number_id", id)
		g := nc.graphs[id]
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := a.Ctrl.RefreshSettings(ctx, id, func(ctx context.Context) (json.RawMessage, error) {
			s, err := g.GetSettings(ctx)
			if err != nil {
				return nil, err
			}
			return s.Calling.Raw, nil
		})
		cancel()
		if err != nil {
			a.Log.Warn("cannot read the calling settings of a number added by reload", "phone_number_id", id, "err", err)
		}
	}
}
