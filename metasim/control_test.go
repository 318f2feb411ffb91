package metasim

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestControlHandler(t *testing.T) {
	e := newEnv(t, nil)
	srv := httptest.NewServer(e.sim.ControlHandler())
	t.Cleanup(srv.Close)
	post := func(path, body string) (int, map[string]any) {
		resp, err := http.Post(srv.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	tests := []struct {
		name string
		path string
		body string
		want int
	}{
		{"bad json", "/calls", `{`, 400},
		{"bad audio", "/calls", `{"from":"447700900123","audio":"jazz"}`, 400},
		{"bad number", "/calls", `{"from":"abc"}`, 400},
		{"unknown call hangup", "/calls/wacid.nope/hangup", ``, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if st, body := post(tt.path, tt.body); st != tt.want {
				t.Fatalf("%s = %d %v", tt.path, st, body)
			}
		})
	}
	st, body := post("/calls", `{"from":"+447700900123","name":"Demo","audio":"tone"}`)
	if st != 200 {
		t.Fatalf("place = %d %v", st, body)
	}
	id := body["id"].(string)
	e.recv.wait(t, "connect", callEventIs(id, "connect"))
	resp, err := http.Get(srv.URL + "/calls")
	if err != nil {
		t.Fatal(err)
	}
	var list []map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if len(list) != 1 || list[0]["id"] != id || list[0]["name"] != "Demo" {
		t.Fatalf("GET /calls = %v", list)
	}
	if st, _ := post("/calls/"+id+"/hangup", ""); st != 200 {
		t.Fatalf("hangup = %d", st)
	}
	h := e.recv.wait(t, "terminate", callEventIs(id, "terminate"))
	if h.first("calls")["status"] != "FAILED" {
		t.Fatalf("terminate of an unanswered call = %s", h.raw)
	}
	if st, _ := post("/calls/"+id+"/hangup", ""); st != 409 {
		t.Fatalf("second hangup = %d", st)
	}
}
