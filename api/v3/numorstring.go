package v3

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// MaxASNumber is the largest 4-byte AS number.
const MaxASNumber = 4294967295

// ASNumber is a BGP autonomous system number. In YAML it may be written as a
// plain number (64512) or as a string, plain or in "asdot" form ("1.10" =
// 1*65536+10), as Calico accepts; it is always written back as a plain number.
// Zero means "not set" (fields that need a value say so in Validate).
type ASNumber uint32

// ParseASNumber parses "64512" or the asdot form "1.10". Zero is refused: it
// is not an AS number.
func ParseASNumber(s string) (ASNumber, error) {
	s = strings.TrimSpace(s)
	if hi, lo, ok := strings.Cut(s, "."); ok {
		h, err1 := strconv.ParseUint(hi, 10, 16)
		l, err2 := strconv.ParseUint(lo, 10, 16)
		if err1 != nil || err2 != nil {
			return 0, fmt.Errorf("%q is not a valid AS number: asdot form needs two numbers 0-65535, like 64512.100", s)
		}
		if h == 0 && l == 0 {
			return 0, fmt.Errorf("%q is not a valid AS number: must be 1-%d", s, uint64(MaxASNumber))
		}
		return ASNumber(h<<16 | l), nil
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil || v == 0 {
		return 0, fmt.Errorf("%q is not a valid AS number: must be 1-%d or asdot form like 64512.100", s, uint64(MaxASNumber))
	}
	return ASNumber(v), nil
}

func (a ASNumber) String() string { return strconv.FormatUint(uint64(a), 10) }

// UnmarshalJSON accepts a JSON number (0 meaning unset) or a string in plain
// or asdot form. A non-integer number is refused rather than read as asdot:
// YAML turns an unquoted 1.10 into the number 1.1, which would silently name
// another AS.
func (a *ASNumber) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := ParseASNumber(s)
		if err != nil {
			return err
		}
		*a = v
		return nil
	}
	v, err := strconv.ParseUint(string(b), 10, 32)
	if err != nil {
		if bytes.ContainsAny(b, ".eE") && !bytes.ContainsAny(b, "\"{[") {
			return fmt.Errorf("%s is not a valid AS number: write asdot form as a quoted string, like \"64512.100\"", b)
		}
		return fmt.Errorf("%s is not a valid AS number: must be 1-%d or asdot form like \"64512.100\"", b, uint64(MaxASNumber))
	}
	*a = ASNumber(v)
	return nil
}

// Protocol is an IP protocol, by name ("TCP", "UDP", "ICMP", "SCTP", "UDPLite",
// "ICMPv6") or by number (0-255), as in Calico policy rules.
type Protocol struct {
	Name string // set when written by name
	Num  uint8  // set when written by number (Name empty)
}

// Protocol names Calico accepts, case-sensitive.
var protocolNames = map[string]uint8{"TCP": 6, "UDP": 17, "ICMP": 1, "ICMPv6": 58, "SCTP": 132, "UDPLite": 136}

func (p Protocol) String() string {
	if p.Name != "" {
		return p.Name
	}
	return strconv.Itoa(int(p.Num))
}

// Number returns the IP protocol number and whether it is known (a known
// name or any number).
func (p Protocol) Number() (uint8, bool) {
	if p.Name == "" {
		return p.Num, true
	}
	n, ok := protocolNames[p.Name]
	return n, ok
}

// SupportsPorts reports whether rules with this protocol may match ports:
// TCP, UDP and SCTP, by name or number.
func (p Protocol) SupportsPorts() bool {
	n, ok := p.Number()
	return ok && (n == 6 || n == 17 || n == 132)
}

func (p Protocol) MarshalJSON() ([]byte, error) {
	if p.Name != "" {
		return json.Marshal(p.Name)
	}
	return json.Marshal(p.Num)
}

func (p *Protocol) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if n, err := strconv.ParseUint(s, 10, 8); err == nil {
			*p = Protocol{Num: uint8(n)}
			return nil
		}
		*p = Protocol{Name: s}
		return nil
	}
	n, err := strconv.ParseUint(string(b), 10, 8)
	if err != nil {
		return fmt.Errorf("protocol %s is not a name or a number 0-255", b)
	}
	*p = Protocol{Num: uint8(n)}
	return nil
}

// Port is a port number, a range "min:max", or a named port, as in Calico
// policy rules.
type Port struct {
	MinPort uint16
	MaxPort uint16
	Name    string
}

func (p Port) String() string {
	switch {
	case p.Name != "":
		return p.Name
	case p.MinPort == p.MaxPort:
		return strconv.Itoa(int(p.MinPort))
	default:
		return fmt.Sprintf("%d:%d", p.MinPort, p.MaxPort)
	}
}

func (p Port) MarshalJSON() ([]byte, error) {
	if p.Name == "" && p.MinPort == p.MaxPort {
		return json.Marshal(p.MinPort)
	}
	return json.Marshal(p.String())
}

func (p *Port) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		return nil
	}
	if len(b) > 0 && b[0] != '"' {
		n, err := strconv.ParseUint(string(b), 10, 16)
		if err != nil {
			return fmt.Errorf("port %s is not a number 0-65535", b)
		}
		*p = Port{MinPort: uint16(n), MaxPort: uint16(n)}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	if lo, hi, ok := strings.Cut(s, ":"); ok {
		l, err1 := strconv.ParseUint(lo, 10, 16)
		h, err2 := strconv.ParseUint(hi, 10, 16)
		if err1 != nil || err2 != nil || l > h {
			return fmt.Errorf("port range %q must be min:max with 0 <= min <= max <= 65535", s)
		}
		*p = Port{MinPort: uint16(l), MaxPort: uint16(h)}
		return nil
	}
	if n, err := strconv.ParseUint(s, 10, 16); err == nil {
		*p = Port{MinPort: uint16(n), MaxPort: uint16(n)}
		return nil
	}
	if s == "" {
		return fmt.Errorf("port must not be empty")
	}
	*p = Port{Name: s}
	return nil
}
