package envelope_test

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/sqlsecrets/sqlsecrets/internal/envelope"
)

// fuzzKey and testScope are the fixed key and scope every fuzzed value is
// opened with. They match the owner_42 vector, so the seeds taken from it
// and its must-fail variants reach Open and not just Parse.
func fuzzKey(tb testing.TB) *envelope.Key {
	tb.Helper()
	k, err := envelope.NewKey(fakeMaster())
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// FuzzParseOpen feeds arbitrary strings to Parse and Open. Neither may
// panic, every failure must be ErrInvalid, and a value that opens must be
// the one encoding of its contents: sealing the plaintext again with the
// same IV gives back the input exactly.
func FuzzParseOpen(f *testing.F) {
	vf := loadV1(f)
	for _, v := range vf.Vectors {
		f.Add(v.Value)
	}
	for _, v := range vf.MustFail {
		f.Add(v.Value)
	}
	k := fuzzKey(f)
	for _, pt := range []string{`""`, `null`, `{"a":[1,2,3]}`, strings.Repeat("x", 48)} {
		v, err := k.SealWithIV(testScope, []byte(pt), [envelope.IVSize]byte{1, 2, 3})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(v)
	}
	for _, s := range []string{"", "v1.", "v1.A", "v1.AA", "v1.====", "v1..", "V1.AAAA",
		"v1." + strings.Repeat("A", 75), "v1." + strings.Repeat("_", 96)} {
		f.Add(s)
	}

	f.Fuzz(func(t *testing.T, value string) {
		s, err := envelope.Parse(value)
		if err != nil {
			if !errors.Is(err, envelope.ErrInvalid) {
				t.Fatal("Parse failed with an error other than ErrInvalid")
			}
			return
		}

		pt, err := k.Open(testScope, s)
		if err != nil {
			if !errors.Is(err, envelope.ErrInvalid) || pt != nil {
				t.Fatal("Open failed with an error other than ErrInvalid, or with a plaintext")
			}
			return
		}

		again, err := k.SealWithIV(testScope, pt, ivOf(t, value))
		if err != nil {
			t.Fatalf("re-sealing an opened value: %v", err)
		}
		if again != value {
			t.Fatal("opened value does not re-seal to the same string: the encoding is malleable")
		}
	})
}

// ivOf digs the IV out of a value that Parse accepted; Sealed keeps it
// unexported.
func ivOf(t *testing.T, value string) [envelope.IVSize]byte {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(value, envelope.Prefix))
	if err != nil || len(raw) < envelope.KIDSize+envelope.IVSize {
		t.Fatal("Parse accepted a value whose IV cannot be decoded")
	}
	var iv [envelope.IVSize]byte
	copy(iv[:], raw[envelope.KIDSize:])
	return iv
}

// FuzzParseLegacy feeds arbitrary strings to ParseLegacy and OpenLegacy,
// with the key of the PHP vectors. Neither may panic, and every failure
// must be ErrInvalid. Legacy values carry no MAC, so nothing stronger holds.
func FuzzParseLegacy(f *testing.F) {
	lf := loadLegacy(f)
	for _, v := range lf.Vectors {
		f.Add(v.Ciphertext)
	}
	k := newKey(f, lf.Vectors[0].Name, lf.Vectors[0].KeyHex)
	id := k.LegacyID()
	fp := base64.StdEncoding.EncodeToString(append(id[:], make([]byte, envelope.IVSize)...))
	for _, s := range []string{"", "====", "AAAA", fp, strings.Repeat("A", 108) + "==",
		base64.StdEncoding.EncodeToString([]byte(string(id[:]) + strings.Repeat("\x00", 16) + "AAAA"))} {
		f.Add(s)
	}

	f.Fuzz(func(t *testing.T, value string) {
		l, err := envelope.ParseLegacy(value)
		if err != nil {
			if !errors.Is(err, envelope.ErrInvalid) {
				t.Fatal("ParseLegacy failed with an error other than ErrInvalid")
			}
			return
		}
		pt, err := k.OpenLegacy(l)
		if err != nil && (!errors.Is(err, envelope.ErrInvalid) || pt != nil) {
			t.Fatal("OpenLegacy failed with an error other than ErrInvalid, or with a plaintext")
		}
	})
}
