package envelope

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
)

// The chunked base64 of encodeV1 and decodeString must give exactly
// what the whole-string calls of encoding/base64 give.

func TestEncodeValueMatchesBase64(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := range 1200 {
		raw := make([]byte, n)
		for i := range raw {
			raw[i] = byte(rng.Uint32())
		}
		if got, want := encodeV1(raw), Prefix+encoding.EncodeToString(raw); got != want {
			t.Fatalf("encodeV1 of %d bytes differs from EncodeToString", n)
		}
	}
}

func TestDecodeStringMatchesBase64(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for n := range 1200 {
		var b strings.Builder
		for range n {
			b.WriteByte(alphabet[rng.IntN(len(alphabet))])
		}
		s := b.String()
		checkDecode(t, s)
		if n > 0 {
			// One bad character, anywhere: in a middle chunk or the last.
			i := rng.IntN(n)
			for _, c := range []string{"=", "+", "/", " ", "\x00", "\xff"} {
				checkDecode(t, s[:i]+c+s[i+1:])
			}
		}
	}
}

func FuzzDecodeString(f *testing.F) {
	seeds := []string{"", "A", "AA", "AAA", "AAAA", "AB", "AB==", strings.Repeat("_", 257)}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.ContainsAny(s, "\r\n") {
			return // Parse refuses line breaks before decoding
		}
		checkDecode(t, s)
	})
}

func checkDecode(t *testing.T, s string) {
	t.Helper()
	got, gotErr := decodeString(s)
	want, wantErr := encoding.DecodeString(s)
	if (gotErr == nil) != (wantErr == nil) || gotErr == nil && !bytes.Equal(got, want) {
		t.Fatalf("decodeString of %d characters: error %v, want %v; same bytes %t",
			len(s), gotErr, wantErr, bytes.Equal(got, want))
	}
}
