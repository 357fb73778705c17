package secrets_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"testing"

	"github.com/sqlsecrets/sqlsecrets/secrets"
)

// lightpackVector is one value that the PHP original wrote.
type lightpackVector struct {
	Name          string `json:"name"`
	Key           string `json:"key"`
	KeyHex        string `json:"key_hex"`
	PlaintextJSON string `json:"plaintext_json"`
	Ciphertext    string `json:"ciphertext"`
}

// lightpackVectorFiles are where the vectors are, relative to this
// package: the project's testdata.
var lightpackVectorFiles = []string{
	"../testdata/lightpack-vectors.json",
}

func loadLightpackVectors(t *testing.T) []lightpackVector {
	t.Helper()
	for _, path := range lightpackVectorFiles {
		data, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatalf("reading %s: %v", path, err)
		}
		var file struct {
			Vectors []lightpackVector `json:"vectors"`
		}
		if err := json.Unmarshal(data, &file); err != nil {
			t.Fatalf("parsing %s: %v", path, err)
		}
		if len(file.Vectors) == 0 {
			t.Fatalf("%s holds no vectors", path)
		}
		return file.Vectors
	}
	t.Fatalf("no lightpack vectors in %v", lightpackVectorFiles)
	return nil
}

// decodeJSON decodes JSON text keeping numbers exact, or fails the test.
func decodeJSON(t *testing.T, what string, text []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%s: not JSON", what)
	}
	return v
}

func TestLegacyVectorsReadBack(t *testing.T) {
	pool := newDB(t)
	ctx := t.Context()
	vectors := loadLightpackVectors(t)

	for i, v := range vectors {
		if len(v.Key) != 32 || hex.EncodeToString([]byte(v.Key)) != v.KeyHex {
			t.Fatalf("%s: vector key is not 32 bytes matching key_hex", v.Name)
		}
		var owner *int64
		if i%2 == 1 {
			owner = ptr(int64(i))
		}
		insertRaw(t, pool, "legacy", owner, v.Name, v.Ciphertext)
	}

	// scope returns the store for vector i over ring: odd vectors have an owner.
	scope := func(ring *secrets.Keyring, i int) secrets.Store {
		s := secrets.New(ring).Group("legacy")
		if i%2 == 1 {
			s = s.Owner(int64(i))
		}
		return s
	}
	for i, v := range vectors {
		s := scope(legacyRing(t, v.Key), i)
		want := decodeJSON(t, v.Name+" plaintext_json", []byte(v.PlaintextJSON))

		raw, err := s.GetJSON(ctx, pool, v.Name)
		if err != nil {
			t.Errorf("%s: GetJSON: %v", v.Name, err)
			continue
		}
		if got := decodeJSON(t, v.Name+" GetJSON", raw); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: GetJSON value differs", v.Name)
		}
		got, err := s.Get(ctx, pool, v.Name)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: Get value differs or error: %v", v.Name, err)
		}

		// The legacy key as a previous key reads it too, and the value is
		// reported as needing rotation.
		ring := legacyRing(t, hexKey, v.Key)
		raw, err = scope(ring, i).GetJSON(ctx, pool, v.Name)
		if err != nil {
			t.Errorf("%s: GetJSON with the legacy key as previous key: %v", v.Name, err)
		} else if got := decodeJSON(t, v.Name+" GetJSON", raw); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: GetJSON with the legacy key as previous key: value differs", v.Name)
		}
		_, current, err := ring.Open(s.Name(v.Name), v.Ciphertext)
		if err != nil || current {
			t.Errorf("%s: Open = current %v, %v; want a value that is not current", v.Name, current, err)
		}
	}
}

func TestLegacyUnicodeVectorDecodesEscapes(t *testing.T) {
	pool := newDB(t)
	for _, v := range loadLightpackVectors(t) {
		if v.Name != "unicode_slash" {
			continue
		}
		insertRaw(t, pool, "legacy", nil, v.Name, v.Ciphertext)
		got, err := secrets.GetAs[string](t.Context(), secrets.New(legacyRing(t, v.Key)).Group("legacy"),
			pool, v.Name)
		if err != nil || got != "p\u00e4ssw\u00f6rd/\u2713 \"q\"" {
			t.Errorf("%s: value differs or error: %v", v.Name, err)
		}
		return
	}
	t.Skip("no unicode_slash vector")
}

func TestLegacyUnderUnknownKeyIsWrongKey(t *testing.T) {
	pool := newDB(t)
	ctx := t.Context()
	for _, v := range loadLightpackVectors(t) {
		insertRaw(t, pool, "legacy", nil, v.Name, v.Ciphertext)
		for _, ring := range []*secrets.Keyring{legacyRing(t, hexKey), legacyRing(t, hexKey, b64Key)} {
			got, err := secrets.New(ring).Group("legacy").Get(ctx, pool, v.Name)
			wantErr(t, v.Name+" without its key", err, secrets.ErrWrongKey)
			if got != nil {
				t.Errorf("%s: Get without its key returned a value", v.Name)
			}
		}
	}
}

// legacyParts splits a legacy value into fingerprint, IV and ciphertext.
func legacyParts(t *testing.T, stored string) (fp, iv, ct []byte) {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(stored)
	if err != nil || len(raw) < 80 {
		t.Fatalf("legacy value is not base64 of 80 or more bytes")
	}
	ct, err = base64.StdEncoding.DecodeString(string(raw[80:]))
	if err != nil {
		t.Fatalf("legacy inner ciphertext is not base64")
	}
	return raw[:64], raw[64:80], ct
}

// legacyValue joins the parts of a legacy value.
func legacyValue(fp, iv, ct []byte) string {
	raw := append(append(append([]byte{}, fp...), iv...), base64.StdEncoding.EncodeToString(ct)...)
	return base64.StdEncoding.EncodeToString(raw)
}

// sealLegacy writes plaintext the way the PHP original did, for must-fail
// and cross-check vectors. key is 32 raw bytes.
func sealLegacy(t *testing.T, key, iv, plaintext []byte) string {
	t.Helper()
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	pad := aes.BlockSize - len(plaintext)%aes.BlockSize
	ct := append(append([]byte{}, plaintext...), bytes.Repeat([]byte{byte(pad)}, pad)...)
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(ct, ct)
	sum := sha256.Sum256(key)
	return legacyValue([]byte(hex.EncodeToString(sum[:])), iv, ct)
}

func TestLegacyCorruptedIsIntegrity(t *testing.T) {
	pool := newDB(t)
	ctx := t.Context()
	for _, v := range loadLightpackVectors(t) {
		fp, iv, ct := legacyParts(t, v.Ciphertext)
		flip := func(b []byte, i int) []byte {
			c := append([]byte{}, b...)
			c[i] ^= 0x01
			return c
		}
		n := len(ct)
		cases := []struct {
			name  string
			value string
			want  error
		}{
			{"last ciphertext byte flipped", legacyValue(fp, iv, flip(ct, n-1)), secrets.ErrIntegrity},
			{"ciphertext cut by one byte", legacyValue(fp, iv, ct[:n-1]), secrets.ErrIntegrity},
			{"ciphertext empty", legacyValue(fp, iv, nil), secrets.ErrIntegrity},
			{"inner base64 broken", base64.StdEncoding.EncodeToString(
				append(append(append([]byte{}, fp...), iv...), "!!!!"...)), secrets.ErrIntegrity},
			{"outer base64 broken", "*" + v.Ciphertext[1:], secrets.ErrIntegrity},
			{"only the fingerprint", base64.StdEncoding.EncodeToString(fp), secrets.ErrIntegrity},
			{"fingerprint flipped", legacyValue(flip(fp, 0), iv, ct), secrets.ErrWrongKey},
			{"fingerprint in capitals", legacyValue(bytes.ToUpper(fp), iv, ct), secrets.ErrWrongKey},
		}
		if n >= 32 {
			// Changes the last padding byte of the plaintext.
			cases = append(cases, struct {
				name  string
				value string
				want  error
			}{"last byte of next-to-last block flipped", legacyValue(fp, iv, flip(ct, n-17)),
				secrets.ErrIntegrity})
		}
		for _, tc := range cases {
			key := v.Name + ": " + tc.name
			insertRaw(t, pool, "legacy", nil, key, tc.value)
			got, err := secrets.New(legacyRing(t, v.Key)).Group("legacy").Get(ctx, pool, key)
			wantErr(t, key, err, tc.want)
			if got != nil {
				t.Errorf("%s: Get returned a value with the error", key)
			}
		}
	}
}

func TestLegacyWrittenHereReadsBack(t *testing.T) {
	pool := newDB(t)
	ctx := t.Context()
	key := []byte(rawKey)
	iv := []byte("0123456789abcdef")
	s := secrets.New(legacyRing(t, rawKey)).Group("legacy")

	for _, tc := range []struct {
		name      string
		plaintext string
		want      error // nil: reads back
	}{
		{"object", `{"a":[1,2],"b":"\/x"}`, nil},
		{"exactly one block", `"0123456789abcd"`, nil},
		{"big number", `12345678901234567890`, nil},
		{"not JSON", `not json at all`, secrets.ErrIntegrity},
		{"empty plaintext", ``, secrets.ErrIntegrity},
		{"two JSON values", `1 2`, secrets.ErrIntegrity},
	} {
		insertRaw(t, pool, "legacy", nil, tc.name, sealLegacy(t, key, iv, []byte(tc.plaintext)))
		raw, err := s.GetJSON(ctx, pool, tc.name)
		if tc.want != nil {
			wantErr(t, tc.name, err, tc.want)
			continue
		}
		if err != nil {
			t.Errorf("%s: GetJSON: %v", tc.name, err)
			continue
		}
		want := decodeJSON(t, tc.name, []byte(tc.plaintext))
		if got := decodeJSON(t, tc.name+" read back", raw); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: value differs", tc.name)
		}
	}
}

// legacyRing is newRing with legacy reads on.
func legacyRing(t *testing.T, current string, previous ...string) *secrets.Keyring {
	t.Helper()
	return newRing(t, current, previous...).WithLegacyReads()
}

// Without legacy reads, a value in the PHP original's format does not
// open at all, even under a key of the ring: it has no MAC, so it could
// have been swapped in from another row.
func TestLegacyNeedsLegacyReads(t *testing.T) {
	pool := newDB(t)
	ctx := t.Context()
	for _, v := range loadLightpackVectors(t) {
		s := secrets.New(newRing(t, v.Key)).Group("legacy")
		insertRaw(t, pool, "legacy", nil, v.Name, v.Ciphertext)
		_, err := s.GetJSON(ctx, pool, v.Name)
		if !errors.Is(err, secrets.ErrLegacyFormat) || !errors.Is(err, secrets.ErrIntegrity) {
			t.Errorf("%s without legacy reads: err %v; want ErrLegacyFormat", v.Name, err)
		}
		if !secrets.IsLegacy(v.Ciphertext) {
			t.Errorf("%s: IsLegacy is false", v.Name)
		}
	}
}
