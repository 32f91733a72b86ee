package v3

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParseASNumber(t *testing.T) {
	cases := []struct {
		in      string
		want    ASNumber
		wantErr string
	}{
		{in: "64512", want: 64512},
		{in: "1", want: 1},
		{in: "4294967295", want: 4294967295},
		{in: "1.10", want: 65546},
		{in: "64512.100", want: 64512*65536 + 100},
		{in: "0.1", want: 1},
		{in: "65535.65535", want: 4294967295},
		{in: " 65000 ", want: 65000},
		{in: "0", wantErr: `"0" is not a valid AS number`},
		{in: "0.0", wantErr: `"0.0" is not a valid AS number`},
		{in: "4294967296", wantErr: `"4294967296" is not a valid AS number`},
		{in: "65536.0", wantErr: "asdot form needs two numbers 0-65535"},
		{in: "1.65536", wantErr: "asdot form needs two numbers 0-65535"},
		{in: "1.", wantErr: "asdot form"},
		{in: "-1", wantErr: "not a valid AS number"},
		{in: "+5", wantErr: "not a valid AS number"},
		{in: "", wantErr: "not a valid AS number"},
		{in: "AS64512", wantErr: "not a valid AS number"},
	}
	for _, tc := range cases {
		got, err := ParseASNumber(tc.in)
		switch {
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("ParseASNumber(%q) = %d, %v; want error containing %q", tc.in, got, err, tc.wantErr)
		case tc.wantErr == "" && (err != nil || got != tc.want):
			t.Errorf("ParseASNumber(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestASNumberJSON(t *testing.T) {
	cases := []struct {
		in      string
		want    ASNumber
		wantErr string
	}{
		{in: `64512`, want: 64512},
		{in: `"64512"`, want: 64512},
		{in: `"1.10"`, want: 65546},
		{in: `"64512.100"`, want: 4227858532},
		{in: `0`, want: 0}, // unset; Validate decides whether it may be
		{in: `null`, want: 7},
		{in: `1.1`, wantErr: "write asdot form as a quoted string"},
		{in: `1e3`, wantErr: "write asdot form as a quoted string"},
		{in: `4294967296`, wantErr: "4294967296 is not a valid AS number"},
		{in: `-1`, wantErr: "is not a valid AS number"},
		{in: `"0"`, wantErr: "is not a valid AS number"},
		{in: `true`, wantErr: "is not a valid AS number"},
	}
	for _, tc := range cases {
		a := ASNumber(7) // null must leave the value alone
		err := a.UnmarshalJSON([]byte(tc.in))
		switch {
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("UnmarshalJSON(%s) = %d, %v; want error containing %q", tc.in, a, err, tc.wantErr)
		case tc.wantErr == "" && (err != nil || a != tc.want):
			t.Errorf("UnmarshalJSON(%s) = %d, %v; want %d", tc.in, a, err, tc.want)
		}
	}
}

func TestParsePeerIP(t *testing.T) {
	cases := []struct {
		in       string
		wantAddr string
		wantPort uint16
		wantErr  string
	}{
		{in: "10.0.0.1", wantAddr: "10.0.0.1"},
		{in: "10.0.0.1:1179", wantAddr: "10.0.0.1", wantPort: 1179},
		{in: "10.0.0.1:65535", wantAddr: "10.0.0.1", wantPort: 65535},
		{in: "fd00::1", wantAddr: "fd00::1"},
		{in: "[fd00::1]:1179", wantAddr: "fd00::1", wantPort: 1179},
		// Without brackets the last group is part of the address.
		{in: "fd00::1:1179", wantAddr: "fd00::1:1179"},
		{in: "::ffff:10.0.0.1", wantAddr: "::ffff:10.0.0.1"},
		{in: "10.0.0.1:0", wantErr: "the port must be 1-65535"},
		{in: "10.0.0.1:65536", wantErr: "the port must be 1-65535"},
		{in: "10.0.0.1:", wantErr: "the port must be 1-65535"},
		{in: "[fd00::1]", wantErr: `"[<IPv6>]:<port>"`},
		{in: "[fd00::1]:", wantErr: "the port must be 1-65535"},
		{in: "[10.0.0.1]:179", wantErr: "must be an IPv6 address"},
		{in: "fe80::1%eth0", wantErr: "zones are not allowed"},
		{in: "router.example.com:179", wantErr: "is not a valid peer IP"},
		{in: "10.0.0.1:179:1", wantErr: "is not a valid peer IP"},
		{in: "10.0.0.256", wantErr: "is not a valid peer IP"},
		{in: "", wantErr: "is not a valid peer IP"},
	}
	for _, tc := range cases {
		addr, port, err := ParsePeerIP(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParsePeerIP(%q) = %v, %d, %v; want error containing %q", tc.in, addr, port, err, tc.wantErr)
			}
			continue
		}
		if err != nil || addr != netip.MustParseAddr(tc.wantAddr) || port != tc.wantPort {
			t.Errorf("ParsePeerIP(%q) = %v, %d, %v; want %s, %d", tc.in, addr, port, err, tc.wantAddr, tc.wantPort)
		}
	}
}

func TestProtocolAndPort(t *testing.T) {
	for _, tc := range []struct {
		p     Protocol
		ports bool
	}{
		{Protocol{Name: "TCP"}, true}, {Protocol{Name: "UDP"}, true}, {Protocol{Name: "SCTP"}, true},
		{Protocol{Num: 6}, true}, {Protocol{Num: 17}, true}, {Protocol{Num: 132}, true},
		{Protocol{Name: "ICMP"}, false}, {Protocol{Name: "UDPLite"}, false}, {Protocol{Name: "tcp"}, false}, {Protocol{Num: 1}, false},
	} {
		if got := tc.p.SupportsPorts(); got != tc.ports {
			t.Errorf("%v.SupportsPorts() = %t, want %t", tc.p, got, tc.ports)
		}
	}
	var p Port
	for in, want := range map[string]string{`80`: "80", `"80"`: "80", `"1000:2000"`: "1000:2000", `"http"`: "http"} {
		if err := p.UnmarshalJSON([]byte(in)); err != nil || p.String() != want {
			t.Errorf("Port from %s = %q, %v; want %q", in, p.String(), err, want)
		}
	}
	for _, in := range []string{`-1`, `65536`, `"2000:1000"`, `""`, `"1:x"`} {
		if err := p.UnmarshalJSON([]byte(in)); err == nil {
			t.Errorf("Port from %s accepted as %q", in, p.String())
		}
	}
}
