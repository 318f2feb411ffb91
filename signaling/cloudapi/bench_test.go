package cloudapi

import (
	"context"
	"net/http"
	"testing"
)

func BenchmarkPreAccept(b *testing.B) {
	srv := newMetaServer(b, func(_ int64, w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, `{"messaging_product":"whatsapp","success":true}`)
	})
	c, _ := testClient(b, srv.URL, nil)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := c.PreAccept(ctx, callID, testSDP); err != nil {
			b.Fatal(err)
		}
	}
}
