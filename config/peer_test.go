package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestPasswordRedacted(t *testing.T) {
	const secret = "s3cret-md5"
	p := Password(secret)
	peer := &BGPPeer{Name: "tor", Password: p}

	var printed []string
	for _, verb := range []string{"%s", "%v", "%+v", "%#v", "%q", "%x", "%X", "%d", "%10s", "%T=%v"} {
		printed = append(printed, fmt.Sprintf(verb, p), fmt.Sprintf(verb, peer), fmt.Sprintf(verb, *peer))
	}
	printed = append(printed, fmt.Sprint(p), fmt.Sprintln(p, peer), p.String(), p.GoString())

	j, err := json.Marshal(struct{ P Password }{p})
	if err != nil {
		t.Fatalf("json.Marshal: %v", err)
	}
	printed = append(printed, string(j))

	var logs bytes.Buffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("peer", "password", p, "peer", peer)
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("peer", "password", p)
	printed = append(printed, logs.String())

	for _, s := range printed {
		if strings.Contains(s, secret) || strings.Contains(s, fmt.Sprintf("%x", secret)) {
			t.Errorf("printed the password: %s", s)
		}
	}
	if got := fmt.Sprintf("%s|%v|%#v", p, p, p); got != "<redacted>|<redacted>|<redacted>" {
		t.Errorf("Sprintf = %q, want <redacted> three times", got)
	}
	if string(j) != `{"P":"\u003credacted\u003e"}` {
		t.Errorf("json.Marshal = %s", j)
	}
	if string(p) != secret {
		t.Errorf("string(p) = %q, want the password", string(p))
	}
}
