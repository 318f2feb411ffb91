package phone

import (
	"errors"
	"testing"
)

func TestParseUser(t *testing.T) {
	tests := []struct {
		in               string
		key, country     string
		bsuid, wantPhone bool
		err              bool
	}{
		{in: "+44 7700 900123", key: "447700900123", country: "GB", wantPhone: true},
		{in: "US.13491208655302741918", key: "US.13491208655302741918", country: "US", bsuid: true},
		{in: "US.ENT.11815799212886844830", key: "US.ENT.11815799212886844830", country: "US", bsuid: true},
		{in: "GB.abcDEF123", key: "GB.abcDEF123", country: "GB", bsuid: true},
		{in: "us.1349", err: true},
		{in: "US.", err: true},
		{in: "US.12 34", err: true},
		{in: "XX", err: true},
		{in: "not a number", err: true},
	}
	for _, tt := range tests {
		u, err := ParseUser(tt.in)
		if tt.err {
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("%q: err %v", tt.in, err)
			}
			continue
		}
		if err != nil || u.Key() != tt.key || u.Country() != tt.country || (u.BSUID != "") != tt.bsuid || (u.Phone.E164 != "") != tt.wantPhone {
			t.Errorf("%q: %+v %v", tt.in, u, err)
		}
		if m := u.Masked(); m == tt.in || m == "" {
			t.Errorf("%q: masked %q", tt.in, m)
		}
	}
	if !IsParentBSUID("US.ENT.1") || IsParentBSUID("US.1") {
		t.Error("IsParentBSUID")
	}
}
