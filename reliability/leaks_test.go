package reliability_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// minNeedle is the shortest secret text the leak watch looks for; shorter
// texts, such as "1" or "true", appear everywhere by chance.
const minNeedle = 6

// watch holds every secret value and every piece of key material the run
// has used, so that any output can be searched for them.
var watch struct {
	mu      sync.Mutex
	needles []string
}

// secretValue registers a plaintext value as secret and returns it.
func secretValue(v string) string {
	addNeedle(v)
	return v
}

// secretKey registers a master key, in the text form given, and every
// spelling of its bytes, and returns the text.
func secretKey(text string, raw []byte) string {
	addNeedle(text)
	addNeedle(strings.TrimPrefix(text, "base64:"))
	addNeedle(hex.EncodeToString(raw))
	addNeedle(strings.ToUpper(hex.EncodeToString(raw)))
	addNeedle(base64.StdEncoding.EncodeToString(raw))
	addNeedle(base64.RawURLEncoding.EncodeToString(raw))
	addNeedle(string(raw))
	addNeedle(fmt.Sprint(raw)) // how fmt prints a []byte: [1 2 3 ...]
	sum := sha256.Sum256(raw)
	addNeedle(hex.EncodeToString(sum[:])) // the PHP original's fingerprint
	return text
}

func addNeedle(s string) {
	if len(s) < minNeedle {
		return
	}
	watch.mu.Lock()
	defer watch.mu.Unlock()
	watch.needles = append(watch.needles, s)
}

// checkLeaks fails the test, and counts a leak for the kind, for every
// registered secret found in out. where says what out is; the secret
// itself is never printed.
func checkLeaks(t testing.TB, f *figures, where, out string) {
	t.Helper()
	watch.mu.Lock()
	defer watch.mu.Unlock()
	for i, n := range watch.needles {
		if strings.Contains(out, n) {
			f.leaks.Add(1)
			t.Errorf("leak: registered secret #%d appears in %s", i, where)
		}
	}
}

// formatted returns v as every fmt verb and slog handler shows it, for
// checkLeaks.
func formatted(v any) string {
	var b strings.Builder
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
		fmt.Fprintf(&b, verb+"\n", v)
	}
	slog.New(slog.NewTextHandler(&b, nil)).Info("x", "v", v)
	slog.New(slog.NewJSONHandler(&b, nil)).Info("x", "v", v)
	return b.String()
}
