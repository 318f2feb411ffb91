package agents_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/callgw/callgw/signaling/agents"
)

func TestParseTransferMessages(t *testing.T) {
	cases := []struct {
		name, in, wantErr string
	}{
		{name: "hold", in: `{"type":"hold","call_id":"wacid.1"}`},
		{name: "hold without call", in: `{"type":"hold"}`, wantErr: "hold needs call_id"},
		{name: "unhold", in: `{"type":"unhold","call_id":"wacid.1"}`},
		{name: "transfer to an agent", in: `{"type":"transfer","call_id":"wacid.1","agent":"bob","mode":"blind"}`},
		{name: "transfer to a team", in: `{"type":"transfer","call_id":"wacid.1","team":"sales","mode":"warm"}`},
		{name: "transfer to both", in: `{"type":"transfer","call_id":"wacid.1","agent":"bob","team":"sales","mode":"warm"}`, wantErr: "agent or team"},
		{name: "transfer to nobody", in: `{"type":"transfer","call_id":"wacid.1","mode":"warm"}`, wantErr: "agent or team"},
		{name: "transfer cold", in: `{"type":"transfer","call_id":"wacid.1","agent":"bob","mode":"cold"}`, wantErr: "blind or warm"},
		{name: "transfer long agent", in: `{"type":"transfer","call_id":"wacid.1","agent":"` + strings.Repeat("b", 129) + `","mode":"warm"}`, wantErr: "longer than 128"},
		{name: "transfer without call", in: `{"type":"transfer","agent":"bob","mode":"blind"}`, wantErr: "transfer needs call_id"},
		{name: "transfer_complete", in: `{"type":"transfer_complete","call_id":"wacid.1"}`},
		{name: "transfer_cancel", in: `{"type":"transfer_cancel","call_id":"wacid.1"}`},
		{name: "monitor listen", in: `{"type":"monitor","call_id":"wacid.1","mode":"listen"}`},
		{name: "monitor whisper", in: `{"type":"monitor","call_id":"wacid.1","mode":"whisper"}`},
		{name: "monitor takeover", in: `{"type":"monitor","call_id":"wacid.1","mode":"takeover"}`},
		{name: "monitor barge", in: `{"type":"monitor","call_id":"wacid.1","mode":"barge"}`, wantErr: "listen, whisper or takeover"},
		{name: "monitor_answer", in: `{"type":"monitor_answer","call_id":"wacid.1","sdp":"v=0"}`},
		{name: "monitor_answer without sdp", in: `{"type":"monitor_answer","call_id":"wacid.1"}`, wantErr: "needs sdp"},
		{name: "monitor_ice", in: `{"type":"monitor_ice","call_id":"wacid.1","candidate":{"candidate":""}}`},
		{name: "monitor_ice without candidate", in: `{"type":"monitor_ice","call_id":"wacid.1"}`, wantErr: "needs candidate"},
		{name: "monitor_stop", in: `{"type":"monitor_stop","call_id":"wacid.1"}`},
		{name: "monitor_stop without call", in: `{"type":"monitor_stop"}`, wantErr: "monitor_stop needs call_id"},
		{name: "still unknown", in: `{"type":"barge","call_id":"wacid.1"}`, wantErr: "unknown type"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := agents.ParseClientMessage([]byte(tc.in))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if m.CallID != "wacid.1" {
					t.Fatalf("%+v", m)
				}
				return
			}
			if !errors.Is(err, agents.ErrBadMessage) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err %v, want %q", err, tc.wantErr)
			}
		})
	}
}
