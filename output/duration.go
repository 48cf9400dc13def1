package output

import "strconv"

// FormatDuration writes a millisecond count the way an operator reads it:
// "312ms", "5.3s", "4m05s", "2h03m". Each form keeps two or three significant
// figures, which is all a timeline needs; values are rounded, not truncated,
// and a value that rounds up to the next unit moves to it (59 960 ms is
// "1m00s", not "60.0s"). A negative value (record.Absent) gives "?".
func FormatDuration(ms int64) string {
	var buf [24]byte
	return string(appendDuration(buf[:0], ms))
}

func appendDuration(b []byte, ms int64) []byte {
	if ms < 0 {
		return append(b, '?')
	}
	if ms < 1000 {
		b = strconv.AppendInt(b, ms, 10)
		return append(b, 'm', 's')
	}
	if tenths := (ms + 50) / 100; tenths < 600 {
		b = strconv.AppendInt(b, tenths/10, 10)
		return append(b, '.', byte('0'+tenths%10), 's')
	}
	if s := (ms + 500) / 1000; s < 3600 {
		b = strconv.AppendInt(b, s/60, 10)
		b = append(b, 'm')
		b = append2Digits(b, s%60)
		return append(b, 's')
	}
	mins := (ms + 30_000) / 60_000
	b = strconv.AppendInt(b, mins/60, 10)
	b = append(b, 'h')
	b = append2Digits(b, mins%60)
	return append(b, 'm')
}

func append2Digits(b []byte, v int64) []byte {
	return append(b, byte('0'+v/10), byte('0'+v%10))
}
