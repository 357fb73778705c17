package secrets_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/sqlsecrets/sqlsecrets/secrets"
)

// FuzzNewKeyring feeds arbitrary key texts to the keyring parser. It must
// never panic; a refusal is ErrInvalidKey and does not quote the input; an
// accepted keyring seals and opens.
func FuzzNewKeyring(f *testing.F) {
	for _, seed := range [][2]string{
		{"0123456789abcdef0123456789abcdef", ""},
		{strings.Repeat("ab", 32), "0123456789abcdef0123456789abcdef"},
		{"base64:" + strings.Repeat("A", 43) + "=", ""},
		{"base64:" + strings.Repeat("A", 42) + "==", ""},
		{" 0123456789abcdef0123456789abcdef", ""},
		{strings.Repeat("zz", 32), ""},
		{"0123456789abcdef0123456789abcdef", "0123456789abcdef0123456789abcdef"},
		{"base64:", ","},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, current, previous string) {
		var prev []string
		if previous != "" {
			prev = strings.Split(previous, ",")
		}
		ring, err := secrets.NewKeyring(current, prev...)
		if err != nil {
			if !errors.Is(err, secrets.ErrInvalidKey) {
				t.Fatalf("refusal does not match ErrInvalidKey: %T", err)
			}
			for _, in := range append([]string{current}, prev...) {
				// The form's name is not key material; what follows it is.
				in = strings.TrimPrefix(in, "base64:")
				if len(in) >= 6 && strings.Contains(err.Error(), in) {
					t.Fatalf("the error quotes a key text")
				}
			}
			return
		}
		if ring.Len() != 1+len(prev) {
			t.Fatalf("keyring holds %d keys, want %d", ring.Len(), 1+len(prev))
		}
		n := secrets.Name{Group: "g", Key: "k"}
		sealed, err := ring.Seal(n, []byte(`"v"`))
		if err != nil {
			t.Fatalf("seal: %v", err)
		}
		pt, current2, err := ring.Open(n, sealed)
		if err != nil || !current2 || string(pt) != `"v"` {
			t.Fatalf("open after seal: current %v, err %v", current2, err)
		}
	})
}
