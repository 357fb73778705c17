package secrets_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/sqlsecrets/sqlsecrets/secrets"
)

// TestKeyEncodingsParse checks that the three accepted spellings of the
// same 32 bytes make the same key: a value sealed with one opens with the
// others.
func TestKeyEncodingsParse(t *testing.T) {
	b := []byte(rawKey)
	spellings := []struct{ name, text string }{
		{"raw 32 bytes", rawKey},
		{"hex lowercase", hex.EncodeToString(b)},
		{"hex uppercase", strings.ToUpper(hex.EncodeToString(b))},
		{"base64", "base64:" + base64.StdEncoding.EncodeToString(b)},
	}
	name := secrets.Name{Group: "g", Key: "k"}
	for _, sealer := range spellings {
		sealRing := newRing(t, sealer.text)
		sealed, err := sealRing.Seal(name, []byte(`"x"`))
		if err != nil {
			t.Fatalf("%s: Seal: %v", sealer.name, err)
		}
		for _, opener := range spellings {
			pt, _, err := newRing(t, opener.text).Open(name, sealed)
			if err != nil {
				t.Errorf("sealed with %s, opened with %s: %v", sealer.name, opener.name, err)
			} else if string(pt) != `"x"` {
				t.Errorf("sealed with %s, opened with %s: value differs", sealer.name, opener.name)
			}
		}
	}

	for _, k := range []string{rawKey, hexKey, b64Key} {
		if r := newRing(t, k); r.Len() != 1 {
			t.Errorf("Len() = %d for a ring of one key", r.Len())
		}
	}
}

// keyMaterialOf strips what is not key material from a test key text: the
// whitespace around it and the "base64:" prefix.
func keyMaterialOf(text string) string {
	s := strings.TrimSpace(text)
	if rest, ok := strings.CutPrefix(s, "base64:"); ok {
		return rest
	}
	return s
}

// checkErrorHidesKey fails if msg holds the key text or any run of six or
// more of its characters. It reports the offset of the run, not the run.
func checkErrorHidesKey(t *testing.T, name, msg, text string) {
	t.Helper()
	m := keyMaterialOf(text)
	if len(m) >= 6 && strings.Contains(msg, text) {
		t.Errorf("%s: error contains the key text", name)
		return
	}
	for i := 0; i+6 <= len(m); i++ {
		if strings.Contains(msg, m[i:i+6]) {
			t.Errorf("%s: error contains the 6 key characters at offset %d", name, i)
			return
		}
	}
}

func badKeys() []struct{ name, text string } {
	b := []byte(rawKey)
	std := base64.StdEncoding.EncodeToString(b)
	ones := bytes.Repeat([]byte{0xff}, 32) // base64 "////...", base64url "____..."
	return []struct{ name, text string }{
		{"empty", ""},
		{"raw 31 bytes", rawKey[:31]},
		{"raw 33 bytes", rawKey + "x"},
		{"raw 1 byte", "k"},
		{"hex 63 characters", hexKey[:63]},
		{"hex 65 characters", hexKey + "a"},
		{"hex with g", hexKey[:10] + "g" + hexKey[11:]},
		{"hex with z at the end", hexKey[:63] + "z"},
		{"hex with 0x prefix", "0x" + hexKey[:62]},
		{"hex with a space inside", hexKey[:20] + " " + hexKey[21:]},
		{"base64 with bad characters", "base64:" + "!!" + std[2:]},
		{"base64 without padding", "base64:" + base64.RawStdEncoding.EncodeToString(b)},
		{"base64url alphabet", "base64:" + base64.URLEncoding.EncodeToString(ones)},
		{"base64 of 31 bytes", "base64:" + base64.StdEncoding.EncodeToString(b[:31])},
		{"base64 of 33 bytes", "base64:" + base64.StdEncoding.EncodeToString(append(b, 'x'))},
		{"base64 empty", "base64:"},
		{"base64 prefix in capitals", "BASE64:" + std},
		{"leading space, raw", " " + rawKey},
		{"trailing space, raw 32 bytes", rawKey[:31] + " "},
		{"trailing newline, raw", rawKey + "\n"},
		{"leading space, hex", " " + hexKey},
		{"trailing newline, hex", hexKey + "\n"},
		{"trailing CRLF, hex", hexKey + "\r\n"},
		{"leading tab, base64", "\t" + b64Key},
		{"trailing newline, base64", b64Key + "\n"},
		{"trailing space, base64", b64Key + " "},
	}
}

func TestBadKeysAreRefusedWithoutShowingThem(t *testing.T) {
	for _, tc := range badKeys() {
		r, err := secrets.NewKeyring(tc.text)
		if err == nil {
			t.Errorf("%s: NewKeyring accepted it (ring of %d keys)", tc.name, r.Len())
			continue
		}
		if !errors.Is(err, secrets.ErrInvalidKey) {
			t.Errorf("%s: error does not match ErrInvalidKey: %v", tc.name, err)
		}
		checkErrorHidesKey(t, tc.name, err.Error(), tc.text)

		// The same key as a previous key fails the same way.
		_, err = secrets.NewKeyring(hexKey, rawKey, tc.text)
		if !errors.Is(err, secrets.ErrInvalidKey) {
			t.Errorf("%s as previous key 2: error does not match ErrInvalidKey: %v", tc.name, err)
		} else {
			if !strings.Contains(err.Error(), "previous key 2") {
				t.Errorf("%s as previous key 2: error does not say which key: %v", tc.name, err)
			}
			checkErrorHidesKey(t, tc.name+" as previous key", err.Error(), tc.text)
		}
	}
}

func TestBadKeyErrorStatesLength(t *testing.T) {
	for _, tc := range []struct {
		text string
		want string
	}{
		{rawKey[:31], "31"},
		{rawKey + "x", "33"},
		{hexKey[:63], "63"},
		{hexKey + "a", "65"},
		{"base64:" + base64.StdEncoding.EncodeToString([]byte(rawKey[:31])), "31"},
	} {
		_, err := secrets.NewKeyring(tc.text)
		if err == nil || !regexp.MustCompile(`\b`+tc.want+`\b`).MatchString(err.Error()) {
			t.Errorf("key of length %s: error does not state the length: %v", tc.want, err)
		}
	}
}

func TestDuplicateKeysAreRefused(t *testing.T) {
	b := []byte(rawKey)
	for _, tc := range []struct {
		name     string
		current  string
		previous []string
	}{
		{"previous equal to current", rawKey, []string{rawKey}},
		{"previous equal to current, other encoding", rawKey, []string{hex.EncodeToString(b)}},
		{"previous equal to current, base64", "base64:" + base64.StdEncoding.EncodeToString(b),
			[]string{hexKey, rawKey}},
		{"two equal previous keys", rawKey, []string{hexKey, b64Key, hexKey}},
		{"two equal previous keys, other case", rawKey, []string{hexKey, strings.ToUpper(hexKey)}},
	} {
		_, err := secrets.NewKeyring(tc.current, tc.previous...)
		if !errors.Is(err, secrets.ErrInvalidKey) {
			t.Errorf("%s: err = %v; want ErrInvalidKey", tc.name, err)
			continue
		}
		checkNoKeyMaterial(t, tc.name, err.Error(), tc.current)
		for _, p := range tc.previous {
			checkNoKeyMaterial(t, tc.name, err.Error(), p)
		}
	}
}

func TestKeyringFromEnv(t *testing.T) {
	t.Run("valid", func(t *testing.T) {
		t.Setenv(secrets.EnvKey, rawKey)
		t.Setenv(secrets.EnvPreviousKeys, hexKey+","+b64Key)
		r, err := secrets.KeyringFromEnv()
		if err != nil {
			t.Fatalf("KeyringFromEnv: %v", err)
		}
		if r.Len() != 3 {
			t.Errorf("Len() = %d; want 3", r.Len())
		}

		// The current key seals; previous keys still open.
		n := secrets.Name{Group: "g", Key: "k"}
		sealed, err := r.Seal(n, []byte("1"))
		if err != nil {
			t.Fatalf("Seal: %v", err)
		}
		if _, current, err := newRing(t, rawKey).Open(n, sealed); err != nil || !current {
			t.Errorf("value from the env ring is not sealed with SECRETS_KEY: current=%v, %v", current, err)
		}
		old, err := newRing(t, b64Key).Seal(n, []byte("2"))
		if err != nil {
			t.Fatalf("Seal: %v", err)
		}
		if _, current, err := r.Open(n, old); err != nil || current {
			t.Errorf("value sealed with a previous key: current=%v, %v; want it to open as not current",
				current, err)
		}
	})

	t.Run("no previous keys", func(t *testing.T) {
		t.Setenv(secrets.EnvKey, b64Key)
		t.Setenv(secrets.EnvPreviousKeys, "")
		r, err := secrets.KeyringFromEnv()
		if err != nil || r.Len() != 1 {
			t.Fatalf("KeyringFromEnv: %v", err)
		}
	})

	for _, tc := range []struct {
		name    string
		key     *string // nil: unset
		prev    *string
		want    *regexp.Regexp
		secrets []string // key texts that must not show
	}{
		{name: "SECRETS_KEY unset", want: regexp.MustCompile(`SECRETS_KEY`)},
		{name: "SECRETS_KEY empty", key: new(""), want: regexp.MustCompile(`SECRETS_KEY`)},
		{name: "SECRETS_KEY unset, previous set", prev: new(hexKey),
			want: regexp.MustCompile(`SECRETS_KEY\b`), secrets: []string{hexKey}},
		{name: "SECRETS_KEY bad", key: new(rawKey[:31]),
			want: regexp.MustCompile(`SECRETS_KEY\b`)},
		{name: "previous entry 1 bad", key: new(rawKey), prev: new(hexKey[:63]),
			want: regexp.MustCompile(`SECRETS_PREVIOUS_KEYS\D*\b1\b`), secrets: []string{rawKey}},
		{name: "previous entry 2 bad", key: new(rawKey), prev: new(hexKey + "," + b64Key + "\n"),
			want: regexp.MustCompile(`SECRETS_PREVIOUS_KEYS\D*\b2\b`), secrets: []string{rawKey, hexKey}},
		{name: "previous entry 3 empty", key: new(rawKey), prev: new(hexKey + "," + b64Key + ","),
			want: regexp.MustCompile(`SECRETS_PREVIOUS_KEYS\D*\b3\b`), secrets: []string{rawKey, hexKey, b64Key}},
		{name: "previous entry with space after comma", key: new(rawKey), prev: new(hexKey + ", " + b64Key),
			want: regexp.MustCompile(`SECRETS_PREVIOUS_KEYS\D*\b2\b`), secrets: []string{rawKey, hexKey, b64Key}},
		{name: "previous equal to current", key: new(rawKey), prev: new(rawKey),
			want: regexp.MustCompile(`SECRETS_PREVIOUS_KEYS`), secrets: []string{rawKey}},
		{name: "previous equal to current, other encoding", key: new(rawKey),
			prev: new(hex.EncodeToString([]byte(rawKey))),
			want: regexp.MustCompile(`SECRETS_PREVIOUS_KEYS`), secrets: []string{rawKey}},
		{name: "duplicate previous", key: new(rawKey), prev: new(hexKey + "," + b64Key + "," + hexKey),
			want: regexp.MustCompile(`SECRETS_PREVIOUS_KEYS\D*\b3\b`), secrets: []string{rawKey, hexKey, b64Key}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			setOrUnset(t, secrets.EnvKey, tc.key)
			setOrUnset(t, secrets.EnvPreviousKeys, tc.prev)
			r, err := secrets.KeyringFromEnv()
			if err == nil {
				t.Fatalf("KeyringFromEnv accepted it (ring of %d keys)", r.Len())
			}
			if !errors.Is(err, secrets.ErrInvalidKey) {
				t.Errorf("error does not match ErrInvalidKey: %v", err)
			}
			if !tc.want.MatchString(err.Error()) {
				t.Errorf("error %q does not match %s", err, tc.want)
			}
			for _, k := range tc.secrets {
				checkNoKeyMaterial(t, tc.name, err.Error(), k)
			}
			if tc.key != nil {
				checkErrorHidesKey(t, tc.name, err.Error(), *tc.key)
			}
			if tc.prev != nil {
				for _, p := range strings.Split(*tc.prev, ",") {
					checkErrorHidesKey(t, tc.name, err.Error(), p)
				}
			}
		})
	}
}

// setOrUnset sets the environment variable, or unsets it for the test when
// v is nil.
func setOrUnset(t *testing.T, name string, v *string) {
	t.Helper()
	t.Setenv(name, "") // restores the old value after the test
	if v == nil {
		if err := os.Unsetenv(name); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Setenv(name, *v)
}

func TestGenerateKey(t *testing.T) {
	a, err := secrets.GenerateKey()
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	b, err := secrets.GenerateKey()
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	if a == b {
		t.Errorf("two calls of GenerateKey returned the same key")
	}
	for i, k := range []string{a, b} {
		rest, ok := strings.CutPrefix(k, "base64:")
		if !ok {
			t.Errorf("key %d does not start with base64:", i)
		}
		if raw, err := base64.StdEncoding.Strict().DecodeString(rest); err != nil || len(raw) != 32 {
			t.Errorf("key %d is not standard base64 of 32 bytes (%d bytes, %v)", i, len(raw), err)
		}
		if _, err := secrets.NewKeyring(k); err != nil {
			t.Errorf("key %d does not parse: %v", i, err)
		}
	}
	if _, err := secrets.NewKeyring(a, b); err != nil {
		t.Errorf("two generated keys do not make a ring: %v", err)
	}
}

// TestKeyringRedacted formats a keyring every way fmt and slog can, and
// checks that no spelling of any of its keys appears.
func TestKeyringRedacted(t *testing.T) {
	keys := []string{rawKey, hexKey, b64Key}
	ring := newRing(t, keys[0], keys[1:]...)
	store := secrets.New(ring).Model("users", 42)

	outputs := map[string]string{}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T %p"} {
		outputs[verb+" of *Keyring"] = fmt.Sprintf(verb, ring)
		outputs[verb+" of Keyring"] = fmt.Sprintf(verb, *ring)
		outputs[verb+" of Store"] = fmt.Sprintf(verb, store)
		outputs[verb+" of []*Keyring"] = fmt.Sprintf(verb, []*secrets.Keyring{ring})
		outputs[verb+" of map value"] = fmt.Sprintf(verb, map[string]secrets.Keyring{"r": *ring})
		outputs[verb+" of exported field"] = fmt.Sprintf(verb, struct{ Ring secrets.Keyring }{*ring})
	}
	outputs["Sprint"] = fmt.Sprint(ring, *ring)
	outputs["Sprintln"] = fmt.Sprintln(ring, *ring)
	outputs["String"] = ring.String()
	outputs["GoString"] = ring.GoString()
	outputs["error wrapping"] = fmt.Errorf("config %v: %w", ring, errors.New("x")).Error()

	for name, newHandler := range map[string]func(*bytes.Buffer) slog.Handler{
		"slog JSON": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
		"slog text": func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
	} {
		var buf bytes.Buffer
		log := slog.New(newHandler(&buf))
		log.Info("keyring", "ring", ring, "value", *ring, slog.Any("any", ring),
			slog.Group("cfg", "ring", ring), "store", store)
		log.With("ring", ring).Info("with")
		outputs[name] = buf.String()
		if !strings.Contains(buf.String(), "redacted") {
			t.Errorf("%s: output does not show the redacted keyring", name)
		}
	}

	for name, out := range outputs {
		for i, k := range keys {
			checkNoKeyMaterial(t, fmt.Sprintf("%s, key %d", name, i), out, k)
		}
	}
}

// TestKeyringInUnexportedFieldRedacted covers the case fmt cannot route
// through Keyring's own methods: a Keyring value in an unexported field of
// an application's struct. fmt then prints the fields it finds inside.
func TestKeyringInUnexportedFieldRedacted(t *testing.T) {
	keys := []string{rawKey, hexKey}
	ring := newRing(t, keys[0], keys[1:]...)
	type config struct {
		name string
		ring secrets.Keyring
	}
	cfg := config{name: "app", ring: *ring}

	outputs := map[string]string{}
	for _, verb := range []string{"%v", "%+v", "%#v", "%x"} {
		outputs[verb] = fmt.Sprintf(verb, cfg)
	}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("config", "cfg", cfg)
	outputs["slog text"] = buf.String()

	for name, out := range outputs {
		for i, k := range keys {
			checkNoKeyMaterial(t, fmt.Sprintf("%s of a struct with an unexported Keyring field, key %d",
				name, i), out, k)
		}
	}
}
