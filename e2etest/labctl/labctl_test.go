package labctl

import (
	"bytes"
	"strings"
	"testing"
)

func TestRunUsage(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		code     int
		contains string
	}{
		{nil, 2, "usage: lab"},
		{[]string{"help"}, 0, "Commands:"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"up", "-h"}, 0, "-nodes"},
		{[]string{"down", "-bogus"}, 1, "flag provided but not defined"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			if got := Run(tc.args, &out, &errOut); got != tc.code {
				t.Errorf("exit code %d, want %d (stdout %q, stderr %q)", got, tc.code, out.String(), errOut.String())
			}
			if all := out.String() + errOut.String(); !strings.Contains(all, tc.contains) {
				t.Errorf("output %q lacks %q", all, tc.contains)
			}
		})
	}
}
