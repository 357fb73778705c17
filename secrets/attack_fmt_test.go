package secrets_test

// Attack tests: fmt and slog renderings of every exported type. No key
// material may show anywhere; plaintext values are reported by type name.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/sqlsecrets/sqlsecrets/importer"
	"github.com/sqlsecrets/sqlsecrets/rotation"
	"github.com/sqlsecrets/sqlsecrets/secrets"
)

const plainMarker = "PLAINTEXT-MARKER-7f3a"

func renderings(v any) map[string]string {
	out := map[string]string{}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
		out[verb] = fmt.Sprintf(verb, v)
	}
	out["Sprint"] = fmt.Sprint(v)
	out["Sprintln"] = fmt.Sprintln(v)
	var tb, jb bytes.Buffer
	slog.New(slog.NewTextHandler(&tb, nil)).Info("m", "v", v)
	slog.New(slog.NewJSONHandler(&jb, nil)).Info("m", "v", v)
	out["slog text"] = tb.String()
	out["slog json"] = jb.String()
	// Types that exist to carry a value (secrets.Entry, importer.Record)
	// show it when serialized on purpose, and fmt cannot call their
	// methods from another struct's unexported field.
	if !carriesValue(v) {
		if b, err := json.Marshal(v); err == nil {
			out["json.Marshal"] = string(b)
		}
		type holder struct {
			Exported any
			hidden   any
		}
		out["nested %+v"] = fmt.Sprintf("%+v", holder{v, v})
		out["nested %#v"] = fmt.Sprintf("%#v", holder{v, v})
		out["ptr nested %+v"] = fmt.Sprintf("%+v", &holder{v, v})
	}
	type exported struct{ Exported any }
	out["exported field %+v"] = fmt.Sprintf("%+v", exported{v})
	return out
}

func carriesValue(v any) bool {
	switch v.(type) {
	case secrets.Entry, importer.Record:
		return true
	}
	return false
}

func TestAttackFmtOfExportedTypes(t *testing.T) {
	pool := newDB(t)
	ctx := t.Context()
	keys := []string{rawKey, hexKey}
	ring := newRing(t, rawKey, hexKey)
	s := secrets.New(ring).Model("users", 42)
	mustSet(t, s, pool, "k", plainMarker)
	infos, _ := s.List(ctx, pool)
	_, getErr := secrets.New(newRing(t, b64Key)).Model("users", 42).Get(ctx, pool, "k")
	setErr := secrets.SetMany(ctx, pool, ring, []secrets.Entry{{Name: secrets.Name{Key: ""}, Value: plainMarker}})

	// A rotation failure and a stopped error.
	setRawValue(t, pool, "users", ptr(42), "k", "v1.AAAA")
	res, _ := rotation.Rotate(ctx, pool, newRing(t, b64Key, rawKey, hexKey), rotation.Options{})
	rep, _ := rotation.Verify(ctx, pool, ring, rotation.Options{})
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, stopErr := rotation.Rotate(cctx, pool, ring, rotation.Options{})

	rd := importer.NewReader(strings.NewReader(`{"key":"k","value":"` + plainMarker + `"}` + "\n" +
		`{"key":1,"value":"` + plainMarker + `"}`))
	rec, _ := rd.Next()
	_, lineErr := rd.Next()

	objects := map[string]any{
		"Keyring":            ring,
		"Keyring value":      *ring,
		"Store":              s,
		"Store value ptr":    &s,
		"Name":               s.Name("k"),
		"Info":               infos,
		"OpError":            getErr,
		"IndexError":         setErr,
		"Entry":              secrets.Entry{Name: s.Name("k"), Value: plainMarker},
		"rotation.Result":    res,
		"rotation.Failure":   res.Failures,
		"rotation.Report":    rep,
		"StoppedError":       stopErr,
		"rotation.Options":   rotation.Options{},
		"importer.Record":    rec,
		"importer.LineError": lineErr,
	}
	for name, obj := range objects {
		for verb, out := range renderings(obj) {
			for _, k := range keys {
				for kind, m := range keyMaterial(t, k) {
					if strings.Contains(out, m) {
						t.Errorf("%s with %s shows the %s", name, verb, kind)
					}
				}
			}
			if strings.Contains(out, plainMarker) || strings.Contains(out, fmt.Sprintf("%x", plainMarker)) ||
				strings.Contains(out, strings.Trim(fmt.Sprint([]byte(`"`+plainMarker+`"`)), "[]")) ||
				strings.Contains(out, fmt.Sprintf("%X", plainMarker)) {
				t.Errorf("%s with %s shows the plaintext value", name, verb)
			}
		}
	}
	if stopErr == nil || !errors.Is(stopErr, context.Canceled) {
		t.Fatalf("no stop error: %v", stopErr)
	}
}
