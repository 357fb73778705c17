package envelope_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sqlsecrets/sqlsecrets/internal/envelope"
)

// Failure messages in this file name the vector and the check that failed.
// They never print a plaintext or a key, even though every key here is fake.

const (
	v1Vectors     = "../../testdata/envelope-v1.json"
	legacyVectors = "../../testdata/lightpack-vectors.json"
)

// v1File is testdata/envelope-v1.json, written by testdata/generate-vectors.py.
type v1File struct {
	Vectors  []v1Vector   `json:"vectors"`
	MustFail []v1MustFail `json:"must_fail"`
}

type v1Vector struct {
	Name      string `json:"name"`
	MasterHex string `json:"master_key_hex"`
	KIDHex    string `json:"kid_hex"`
	Group     string `json:"group"`
	Owner     *int64 `json:"owner"`
	Key       string `json:"key"`
	IVHex     string `json:"iv_hex"`
	Plaintext string `json:"plaintext"`
	Value     string `json:"value"`
}

type v1MustFail struct {
	Name      string `json:"name"`
	MasterHex string `json:"master_key_hex"`
	Group     string `json:"group"`
	Owner     *int64 `json:"owner"`
	Key       string `json:"key"`
	Value     string `json:"value"`
	Why       string `json:"why"`
}

// legacyFile is testdata/lightpack-vectors.json, produced by the PHP original.
type legacyFile struct {
	Vectors []struct {
		Name          string `json:"name"`
		KeyHex        string `json:"key_hex"`
		PlaintextJSON string `json:"plaintext_json"`
		Ciphertext    string `json:"ciphertext"`
	} `json:"vectors"`
}

func loadJSON(tb testing.TB, path string, v any) {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
}

func loadV1(tb testing.TB) v1File {
	tb.Helper()
	var f v1File
	loadJSON(tb, v1Vectors, &f)
	if len(f.Vectors) == 0 || len(f.MustFail) == 0 {
		tb.Fatalf("%s: no vectors", v1Vectors)
	}
	return f
}

func loadLegacy(tb testing.TB) legacyFile {
	tb.Helper()
	var f legacyFile
	loadJSON(tb, legacyVectors, &f)
	if len(f.Vectors) == 0 {
		tb.Fatalf("%s: no vectors", legacyVectors)
	}
	return f
}

// newKey builds a key from hex without ever printing the hex.
func newKey(tb testing.TB, name, masterHex string) *envelope.Key {
	tb.Helper()
	master, err := hex.DecodeString(masterHex)
	if err != nil {
		tb.Fatalf("vector %q: master key is not hex", name)
	}
	k, err := envelope.NewKey(master)
	if err != nil {
		tb.Fatalf("vector %q: NewKey: %v", name, err) // the error states only a length
	}
	return k
}

func scopeOf(group string, owner *int64, key string) envelope.Scope {
	sc := envelope.Scope{Group: group, Key: key}
	if owner != nil {
		sc.Owner, sc.HasOwner = *owner, true
	}
	return sc
}

// v1Result is what one known-answer vector checks. Only the kid, which is
// public, is shown in a diff; the rest are yes/no answers.
type v1Result struct {
	KID          string
	SealMatches  bool
	ParseOK      bool
	ParsedKID    string
	OpenOK       bool
	OpenedEquals bool
}

func TestV1Vectors(t *testing.T) {
	for _, v := range loadV1(t).Vectors {
		t.Run(v.Name, func(t *testing.T) {
			k := newKey(t, v.Name, v.MasterHex)
			sc := scopeOf(v.Group, v.Owner, v.Key)
			var iv [envelope.IVSize]byte
			if b, err := hex.DecodeString(v.IVHex); err != nil || len(b) != len(iv) {
				t.Fatalf("vector %q: bad iv_hex", v.Name)
			} else {
				copy(iv[:], b)
			}

			want := v1Result{KID: v.KIDHex, SealMatches: true, ParseOK: true,
				ParsedKID: v.KIDHex, OpenOK: true, OpenedEquals: true}
			var got v1Result
			id := k.ID()
			got.KID = hex.EncodeToString(id[:])

			sealed, err := k.SealWithIV(sc, []byte(v.Plaintext), iv)
			if err != nil {
				t.Fatalf("vector %q: SealWithIV: %v", v.Name, err)
			}
			got.SealMatches = sealed == v.Value

			if s, err := envelope.Parse(v.Value); err == nil {
				got.ParseOK = true
				got.ParsedKID = hex.EncodeToString(s.KID[:])
				pt, err := k.Open(sc, s)
				got.OpenOK = err == nil
				got.OpenedEquals = err == nil && string(pt) == v.Plaintext
			}

			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("vector %q mismatch (-want +got):\n%s", v.Name, diff)
			}
		})
	}
}

func TestV1MustFail(t *testing.T) {
	for _, v := range loadV1(t).MustFail {
		t.Run(v.Name, func(t *testing.T) {
			k := newKey(t, v.Name, v.MasterHex)
			sc := scopeOf(v.Group, v.Owner, v.Key)

			pt, err := parseOpen(k, sc, v.Value)
			if pt != nil {
				t.Fatalf("vector %q (%s): returned a plaintext", v.Name, v.Why)
			}
			checkInvalid(t, v.Name, err)
		})
	}
}

func parseOpen(k *envelope.Key, sc envelope.Scope, value string) ([]byte, error) {
	s, err := envelope.Parse(value)
	if err != nil {
		return nil, err
	}
	return k.Open(sc, s)
}

// checkInvalid wants ErrInvalid itself: not wrapped, so that no detail about
// which check failed can reach a caller.
func checkInvalid(t *testing.T, name string, err error) {
	t.Helper()
	switch {
	case err == nil:
		t.Errorf("vector %q: no error", name)
	case !errors.Is(err, envelope.ErrInvalid):
		t.Errorf("vector %q: error is not ErrInvalid", name)
	case err.Error() != envelope.ErrInvalid.Error():
		t.Errorf("vector %q: ErrInvalid carries extra text", name)
	}
}

// The same kid and one error for every failure are only useful if the
// error is identical across the vectors: compare them all at once.
func TestV1MustFailSameError(t *testing.T) {
	seen := map[string]bool{}
	for _, v := range loadV1(t).MustFail {
		k := newKey(t, v.Name, v.MasterHex)
		_, err := parseOpen(k, scopeOf(v.Group, v.Owner, v.Key), v.Value)
		if err != nil {
			seen[err.Error()] = true
		}
	}
	if diff := cmp.Diff(map[string]bool{envelope.ErrInvalid.Error(): true}, seen); diff != "" {
		t.Errorf("must-fail error texts (-want +got):\n%s", diff)
	}
}

var testScope = envelope.Scope{Group: "users", Owner: 42, HasOwner: true, Key: "token"}

// fakeMaster is the obviously fake key 00 01 .. 1f, as in the vectors.
func fakeMaster() []byte {
	m := make([]byte, envelope.KeySize)
	for i := range m {
		m[i] = byte(i)
	}
	return m
}

func TestSealFreshIV(t *testing.T) {
	k, err := envelope.NewKey(fakeMaster())
	if err != nil {
		t.Fatal(err)
	}
	pt := []byte(`"same input"`)

	a, err := k.Seal(testScope, pt, rand.Reader)
	if err != nil {
		t.Fatalf("first Seal: %v", err)
	}
	b, err := k.Seal(testScope, pt, rand.Reader)
	if err != nil {
		t.Fatalf("second Seal: %v", err)
	}
	if a == b {
		t.Fatal("two seals of the same input are identical: IV reused")
	}

	for i, v := range []string{a, b} {
		got, err := parseOpen(k, testScope, v)
		if err != nil || !bytes.Equal(got, pt) {
			t.Errorf("seal %d does not open to its input", i)
		}
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("no entropy") }

func TestSealRandFails(t *testing.T) {
	k, err := envelope.NewKey(fakeMaster())
	if err != nil {
		t.Fatal(err)
	}
	readers := map[string]io.Reader{
		"error":      failingReader{},
		"empty":      bytes.NewReader(nil),
		"short read": bytes.NewReader(make([]byte, envelope.IVSize-1)),
	}
	for name, r := range readers {
		v, err := k.Seal(testScope, []byte(`"x"`), r)
		if err == nil {
			t.Errorf("rand %s: Seal returned no error", name)
		}
		if v != "" {
			t.Errorf("rand %s: Seal returned a value along with its error", name)
		}
	}
}

func TestNewKeyLength(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33, 64} {
		if _, err := envelope.NewKey(make([]byte, n)); err == nil {
			t.Errorf("NewKey accepted a %d-byte key", n)
		}
	}
}

func TestLegacyVectors(t *testing.T) {
	for _, v := range loadLegacy(t).Vectors {
		t.Run(v.Name, func(t *testing.T) {
			master, err := hex.DecodeString(v.KeyHex)
			if err != nil {
				t.Fatalf("vector %q: key is not hex", v.Name)
			}
			if len(master) != envelope.KeySize {
				t.Skipf("vector %q: key is %d bytes; only 32-byte keys are read", v.Name, len(master))
			}
			k := newKey(t, v.Name, v.KeyHex)

			// The length formula that docs/FORMAT.md states.
			if got, want := len(v.Ciphertext), legacyLen(len(v.PlaintextJSON)); got != want {
				t.Errorf("vector %q: stored length %d, formula says %d", v.Name, got, want)
			}

			l, err := envelope.ParseLegacy(v.Ciphertext)
			if err != nil {
				t.Fatalf("vector %q: ParseLegacy: %v", v.Name, err)
			}
			if l.ID != k.LegacyID() {
				t.Errorf("vector %q: fingerprint is not this key's", v.Name)
			}
			pt, err := k.OpenLegacy(l)
			if err != nil {
				t.Fatalf("vector %q: OpenLegacy: %v", v.Name, err)
			}
			if string(pt) != v.PlaintextJSON {
				t.Errorf("vector %q: opened plaintext differs (got %d bytes, want %d)",
					v.Name, len(pt), len(v.PlaintextJSON))
			}

			// The two formats never mistake each other.
			if _, err := envelope.Parse(v.Ciphertext); !errors.Is(err, envelope.ErrInvalid) {
				t.Errorf("vector %q: Parse accepted a legacy value", v.Name)
			}
		})
	}
}

// legacyLen is the stored length of a legacy value for a JSON text of n bytes.
func legacyLen(n int) int {
	c := 16 * (n/16 + 1)              // ciphertext with PKCS#7
	inner := 4 * ((c + 2) / 3)        // openssl_encrypt's base64
	return 4 * ((80 + inner + 2) / 3) // fingerprint, iv, inner text
}

func TestLegacyMustFail(t *testing.T) {
	vs := loadLegacy(t).Vectors
	good := vs[0]
	k := newKey(t, good.Name, good.KeyHex)
	wrong, err := envelope.NewKey(fakeMaster())
	if err != nil {
		t.Fatal(err)
	}
	c := good.Ciphertext
	v1, err := k.SealWithIV(testScope, []byte(good.PlaintextJSON), [envelope.IVSize]byte{})
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		key   *envelope.Key
		value string
	}{
		{"wrong key", wrong, c},
		{"truncated 1 char", k, c[:len(c)-1]},
		{"truncated 4 chars", k, c[:len(c)-4]},
		{"fingerprint only", k, c[:88]},
		{"non-base64 char", k, c[:10] + "!" + c[11:]},
		{"url alphabet char", k, c[:10] + "_" + c[11:]},
		{"empty", k, ""},
		{"v1 value", k, v1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var pt []byte
			l, err := envelope.ParseLegacy(tt.value)
			if err == nil {
				pt, err = tt.key.OpenLegacy(l)
			}
			if pt != nil {
				t.Fatalf("%s: returned a plaintext", tt.name)
			}
			checkInvalid(t, tt.name, err)
		})
	}
}

// Each master key has one kid, of KIDSize bytes, and two keys never share one.
func TestV1KIDPerKey(t *testing.T) {
	kidOf := map[string]string{} // master key hex -> kid hex
	for _, v := range loadV1(t).Vectors {
		if prev, ok := kidOf[v.MasterHex]; ok && prev != v.KIDHex {
			t.Errorf("vector %q: one master key, two kids", v.Name)
		}
		kidOf[v.MasterHex] = v.KIDHex
	}
	if len(kidOf) < 2 {
		t.Fatal("vectors cover fewer than two master keys")
	}

	seen := map[string]bool{}
	for _, kid := range kidOf {
		if len(kid) != 2*envelope.KIDSize || seen[kid] {
			t.Errorf("kid %s is repeated or of the wrong size", kid)
		}
		seen[kid] = true
	}
}
