package output

import (
	"testing"

	"github.com/katrace/katrace/record"
)

func TestFormatDuration(t *testing.T) {
	for _, tc := range []struct {
		ms   int64
		want string
	}{
		{record.Absent, "?"},
		{0, "0ms"},
		{1, "1ms"},
		{312, "312ms"},
		{999, "999ms"},
		{1000, "1.0s"},
		{1049, "1.0s"},
		{1050, "1.1s"}, // rounded, not truncated
		{5312, "5.3s"},
		{59_949, "59.9s"},
		{59_950, "1m00s"}, // would round to 60.0s: promote instead
		{60_000, "1m00s"},
		{245_000, "4m05s"},
		{245_499, "4m05s"},
		{245_500, "4m06s"},
		{3_599_499, "59m59s"},
		{3_599_500, "1h00m"},
		{7_380_000, "2h03m"},
		{90_000_000, "25h00m"},
	} {
		if got := FormatDuration(tc.ms); got != tc.want {
			t.Errorf("FormatDuration(%d) = %q, want %q", tc.ms, got, tc.want)
		}
	}
}
