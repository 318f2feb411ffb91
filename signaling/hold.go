package signaling

import (
	"fmt"
	"sync"

	"github.com/callgw/callgw/media"
)

// holder is media's hold: music looped toward WhatsApp, nothing toward the
// agent (media.Bridge).
type holder interface {
	Hold(on bool, music *media.Prompt) error
}

// setHold (lifecycle.SetHold) puts the caller on hold with the number's
// hold audio (the built-in "hold" music without one) or takes it off.
func (l *liveCall) setHold(on bool) error {
	h, ok := l.bridge.(holder)
	if !ok || l.bridge == nil {
		return fmt.Errorf("%w: the media bridge cannot hold", ErrBadCommand)
	}
	var music *media.Prompt
	if on {
		l.c.m.holds.Inc()
		if l.c.holdAudio != nil {
			music = l.c.holdAudio(l.lc.Rec.PhoneNumberID) // nil: media's built-in hold music
		}
	}
	if err := h.Hold(on, music); err != nil {
		l.log.Warn("hold", "on", on, "err", err)
		return fmt.Errorf("%w: hold: %w", ErrMediaSetup, err)
	}
	return nil
}

// promptCache keeps loaded prompt files (hold audio, IVR prompts) by path;
// they are immutable and shared by every call.
type promptCache struct {
	mu sync.Mutex
	m  map[string]*media.Prompt
}

// file returns the prompt at path, loading it once.
func (p *promptCache) file(path string) (*media.Prompt, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pr, ok := p.m[path]; ok {
		return pr, nil
	}
	pr, err := media.LoadPromptFile(path)
	if err != nil {
		return nil, err
	}
	if p.m == nil {
		p.m = map[string]*media.Prompt{}
	}
	p.m[path] = pr
	return pr, nil
}
