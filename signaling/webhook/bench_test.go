package webhook

import "testing"

func BenchmarkParse(b *testing.B) {
	body := readFixture(b, "connect_offer.json")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	body := readFixture(b, "connect_offer.json")
	sig := Sign(testSecret, body)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := Verify(testSecret, body, sig); err != nil {
			b.Fatal(err)
		}
	}
}
