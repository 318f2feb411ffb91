package signaling

// setHold (lifecycle.SetHold) puts the caller on hold: the number's hold
// audio toward WhatsApp, nothing toward the agent.
//
// Until media's Hold (h-media) is merged the bridge cannot hold: the state
// changes and is shown, but media keeps forwarding.
func (l *liveCall) setHold(on bool) error {
	if on {
		l.c.m.holds.Inc()
	}
	l.log.Warn("hold: media has no hold yet", "on", on)
	return nil
}
